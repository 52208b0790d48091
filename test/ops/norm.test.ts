import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { groupNorm, layerNorm, rmsNorm, spatialNorm } from '../../src/ops/norm.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, testGpu } from '../helpers.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';

// References are exact (f64, rounded to f32). Our statistics sum up to a few
// thousand f32 terms per group (per-invocation runs of ≤ ~20, then a
// log2(256)-deep tree), so mean and variance carry ~1e-6 relative error; the
// output x·a + b then adds a few roundings and, when |mean| >> std, the
// cancellation of x·a against b (|mean|/std ≈ 150 in the offset cases:
// 150 × 6e-8 ≈ 1e-5 of the output's scale). Hence rtol 1e-5 of max|ref|,
// plus atol 1e-6 for outputs near zero after SiLU.
const RTOL = 1e-5;
const ATOL = 1e-6;

const cases = await loadOpCases('norm');

function caseNamed(name: string): OpCase {
  const c = cases.find((k) => k.name === name);
  if (!c) throw new Error(`fixture case ${name} missing`);
  return c;
}

function upload(gpu: Gpu, c: OpCase, arg: string): Tensor | undefined {
  const t = c.tensors[arg];
  return t ? Tensor.from(gpu, t.data, t.shape) : undefined;
}

async function expectClose(out: Tensor, c: OpCase): Promise<void> {
  const ref = c.tensors.out.data;
  expect(out.shape).toEqual(c.tensors.out.shape);
  const err = maxAbsDiff(await out.read(), ref);
  expect(err, `${c.name}: max error ${err}`).toBeLessThanOrEqual(ATOL + RTOL * maxAbs(ref));
}

function names(prefix: string): string[] {
  return cases.filter((c) => c.name.startsWith(prefix)).map((c) => c.name);
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
