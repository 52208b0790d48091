import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { groupNorm, layerNorm, rmsNorm, spatialNorm } from '../../src/ops/norm.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, randomArray, testGpu, withBindingLimit } from '../helpers.ts';

// References are exact (f64, rounded to f32). Our statistics are f32 sums
// of at most ~40 terms per invocation (then 64 Chan merges), taken relative
// to a sample of the data so that no digits cancel: ≤ 40 × 1.2e-7 ≈ 5e-6
// relative error in the variance at worst, half that in 1/std, and a few
// roundings in the output (x − shift)·a + b. Measured: ≤ 4e-7 of max|ref|.
const RTOL = 3e-6;

const cases = await loadOpCases('norm');

function caseNamed(name: string): OpCase {
  const c = cases.find((k) => k.name === name);
  if (!c) throw new Error(`fixture case ${name} missing`);
  return c;
}

function names(prefix: string): string[] {
  return cases.filter((c) => c.name.startsWith(prefix)).map((c) => c.name);
}

function upload(gpu: Gpu, c: OpCase, arg: string): Tensor | undefined {
  const t = c.tensors[arg];
  return t ? Tensor.from(gpu, t.data, t.shape) : undefined;
}

async function expectClose(out: Tensor, c: OpCase): Promise<void> {
  const ref = c.tensors.out.data;
  expect(out.shape).toEqual(c.tensors.out.shape);
  const err = maxAbsDiff(await out.read(), ref);
  expect(err, `${c.name}: max error ${err}`).toBeLessThanOrEqual(RTOL * maxAbs(ref));
}


describe('groupNorm', () => {
  it.each(names('gn_'))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const p = c.params as { groups: number; eps: number; silu: boolean };
    const arg = (a: string) => upload(gpu, c, a);
    const out = groupNorm(arg('x')!, { groups: p.groups, eps: p.eps, weight: arg('weight'), bias: arg('bias'), scaleShift: arg('scaleShift'), silu: p.silu });
    await expectClose(out, c);
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const x = Tensor.empty(gpu, [2, 6, 4, 4]);
    expect(() => groupNorm(x, { groups: 4, eps: 1e-5 })).toThrow(ShapeError);
    expect(() => groupNorm(x, { groups: 3, eps: 1e-5, weight: Tensor.empty(gpu, [6]) })).toThrow(/together/);
    expect(() => groupNorm(x, { groups: 3, eps: 1e-5, scaleShift: Tensor.empty(gpu, [3, 12]) })).toThrow(/rows or 1/);
    expect(() => groupNorm(x, { groups: 3, eps: 1e-5, scaleShift: Tensor.empty(gpu, [2, 6]) })).toThrow(/scaleShift/);
  });

  it('returns an empty result for an empty batch', async () => {
    const gpu = await testGpu();
    expect(groupNorm(Tensor.empty(gpu, [0, 4, 2, 2]), { groups: 2, eps: 1e-5 }).shape).toEqual([0, 4, 2, 2]);
  });
});

describe('spatialNorm', () => {
  it.each(names('sn_'))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const p = c.params as { groups: number; eps: number; silu: boolean };
    const arg = (a: string) => upload(gpu, c, a)!;
    const out = spatialNorm(arg('x'), arg('zqY'), arg('zqB'), { groups: p.groups, eps: p.eps, weight: arg('weight'), bias: arg('bias'), silu: p.silu });
    await expectClose(out, c);
  });

  it('rejects zq of another channel count or batch', async () => {
    const gpu = await testGpu();
    const x = Tensor.empty(gpu, [2, 4, 8, 8]);
    const w = Tensor.empty(gpu, [4]);
    const zq = (shape: number[]) => Tensor.empty(gpu, shape);
    expect(() => spatialNorm(x, zq([2, 3, 4, 4]), zq([2, 3, 4, 4]), { groups: 2, eps: 1e-6, weight: w, bias: w })).toThrow(ShapeError);
    expect(() => spatialNorm(x, zq([3, 4, 4, 4]), zq([3, 4, 4, 4]), { groups: 2, eps: 1e-6, weight: w, bias: w })).toThrow(/rows or 1/);
  });
});

describe('layerNorm / rmsNorm', () => {
  it.each(names('ln_'))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const arg = (a: string) => upload(gpu, c, a)!;
    await expectClose(layerNorm(arg('x'), arg('weight'), arg('bias'), c.params.eps as number), c);
  });

  it.each(names('rms_'))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const arg = (a: string) => upload(gpu, c, a)!;
    await expectClose(rmsNorm(arg('x'), arg('weight'), c.params.eps as number), c);
  });
});

describe('inputs larger than a storage binding', () => {
  // Split into parts of 2 samples (rows); per-sample operands must follow.
  const [n, c, h, w] = [5, 8, 8, 8];
  const limit = 2 * c * h * w * 4;

  it('normalise part by part with per-sample scale/shift and zq', async () => {
    const gpu = await testGpu();
    const xs = randomArray(n * c * h * w, 7);
    const ss = Tensor.from(gpu, randomArray(n * 2 * c, 8), [n, 2 * c]);
    const zqY = Tensor.from(gpu, randomArray(n * c * 4 * 4, 9), [n, c, 4, 4]);
    const zqB = Tensor.from(gpu, randomArray(n * c * 4 * 4, 10), [n, c, 4, 4]);
    const weight = Tensor.from(gpu, randomArray(c, 11), [c]);
    const run = (x: Tensor) => [
      groupNorm(x, { groups: 4, eps: 1e-5, scaleShift: ss, silu: true }),
      spatialNorm(x, zqY, zqB, { groups: 4, eps: 1e-6, weight, bias: weight }),
      rmsNorm(x.reshape([n, c * h * w]), Tensor.from(gpu, randomArray(c * h * w, 12), [c * h * w]), 1e-6),
    ];
    const whole = await Promise.all(run(Tensor.from(gpu, xs, [n, c, h, w])).map((t) => t.read()));
    const parted = await withBindingLimit(gpu, limit, async () => {
      const x = Tensor.from(gpu, xs, [n, c, h, w]);
      expect(x.partCount).toBe(3);
      return Promise.all(run(x).map((t) => t.read()));
    });
    // The same workgroups compute the same values, whatever buffer holds them.
    for (let i = 0; i < whole.length; i++) expect(maxAbsDiff(parted[i], whole[i])).toBe(0);
  });
});
