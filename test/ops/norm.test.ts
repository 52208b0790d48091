import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { groupNorm, groupNormBandStats, layerNorm, rmsNorm, spatialNorm } from '../../src/ops/norm.ts';
import { concat, slice } from '../../src/ops/layout.ts';
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

describe('banded: statistics of every band, then each band normalised with them', () => {
  // Row counts of bands covering h rows: a first band of one row, three
  // uneven bands, and every row alone.
  const plans = (h: number): number[][] => {
    const third = Math.ceil(h / 3);
    return [[1, h - 1], [third, h - 2 * third - 1 > 0 ? h - 2 * third : 1, third], new Array<number>(h).fill(1)]
      .map((p) => (p.reduce((a, b) => a + b, 0) === h ? p : [third, h - third]))
      .filter((p) => p.every((r) => r > 0));
  };

  function bandsOf(x: Tensor, rows: number[]): Tensor[] {
    let at = 0;
    return rows.map((r) => {
      const b = slice(x, 2, at, r);
      at += r;
      return b;
    });
  }

  // Against the fused op: the same f32 work in another order (per-band
  // moments merged with Chan's formula instead of one workgroup's), so
  // within a few ulps of max|out|; against the f64 references, the fused
  // op's own tolerance.
  const FUSED_RTOL = 1e-6;

  it.each(names('gn_').filter((n) => caseNamed(n).tensors.x.shape.length >= 3))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const p = c.params as { groups: number; eps: number; silu: boolean };
    const arg = (a: string) => upload(gpu, c, a);
    const x = arg('x')!;
    const opts = { groups: p.groups, eps: p.eps, weight: arg('weight'), bias: arg('bias'), scaleShift: arg('scaleShift'), silu: p.silu };
    const fused = (await groupNorm(x, opts).read()) as Float32Array;
    for (const rows of plans(x.shape[2])) {
      const bands = bandsOf(x, rows);
      const stats = groupNormBandStats(bands, p.groups);
      expect(stats.shape).toEqual([x.shape[0], p.groups, rows.length, 4]);
      const out = concat(bands.map((b) => groupNorm(b, { ...opts, bandStats: stats })), 2);
      const got = (await out.read()) as Float32Array;
      expect(maxAbsDiff(got, fused), `${name} bands ${rows.join(',')}`).toBeLessThanOrEqual(FUSED_RTOL * maxAbs(fused));
      expect(maxAbsDiff(got, c.tensors.out.data), `${name} bands ${rows.join(',')} vs reference`).toBeLessThanOrEqual(RTOL * maxAbs(c.tensors.out.data));
    }
  });

  it.each(names('sn_'))('%s', async (name) => {
    const gpu = await testGpu();
    const c = caseNamed(name);
    const p = c.params as { groups: number; eps: number; silu: boolean };
    const arg = (a: string) => upload(gpu, c, a)!;
    const [x, zqY, zqB] = [arg('x'), arg('zqY'), arg('zqB')];
    const opts = { groups: p.groups, eps: p.eps, weight: arg('weight'), bias: arg('bias'), silu: p.silu };
    const fused = (await spatialNorm(x, zqY, zqB, opts).read()) as Float32Array;
    const height = x.shape[2];
    for (const rows of plans(height)) {
      const bands = bandsOf(x, rows);
      const stats = groupNormBandStats(bands, p.groups);
      let firstRow = 0;
      const outs = bands.map((b) => {
        const o = spatialNorm(b, zqY, zqB, { ...opts, bandStats: stats, band: { firstRow, height } });
        firstRow += b.shape[2];
        return o;
      });
      const got = (await concat(outs, 2).read()) as Float32Array;
      expect(maxAbsDiff(got, fused), `${name} bands ${rows.join(',')}`).toBeLessThanOrEqual(FUSED_RTOL * maxAbs(fused));
      expect(maxAbsDiff(got, c.tensors.out.data), `${name} bands ${rows.join(',')} vs reference`).toBeLessThanOrEqual(RTOL * maxAbs(c.tensors.out.data));
    }
  });

  it('bands larger than a binding are taken part by part (samples along dim 0)', async () => {
    const gpu = await testGpu();
    const [n, c, h, w] = [5, 8, 9, 8];
    const xs = randomArray(n * c * h * w, 13);
    const whole = (await groupNorm(Tensor.from(gpu, xs, [n, c, h, w]), { groups: 4, eps: 1e-5 }).read()) as Float32Array;
    // Rows [r0, r0 + rows) of every (sample, channel) of a host image.
    const rowsOf = (v: Float32Array, r0: number, rows: number) => {
      const out = new Float32Array(n * c * rows * w);
      for (let i = 0; i < n * c; i++) out.set(v.subarray((i * h + r0) * w, (i * h + r0 + rows) * w), i * rows * w);
      return out;
    };
    const split = [[0, 4], [4, 5]];
    const got = await withBindingLimit(gpu, 2 * c * 4 * w * 4, async () => {
      const bands = split.map(([r0, rows]) => Tensor.from(gpu, rowsOf(xs, r0, rows), [n, c, rows, w]));
      expect(bands.map((b) => b.partCount)).toEqual([3, 5]);
      const stats = groupNormBandStats(bands, 4);
      return Promise.all(bands.map((b) => groupNorm(b, { groups: 4, eps: 1e-5, bandStats: stats }).read()));
    });
    split.forEach(([r0, rows], b) => expect(maxAbsDiff(got[b], rowsOf(whole, r0, rows))).toBeLessThanOrEqual(FUSED_RTOL * maxAbs(whole)));
  });

  it('rejects mismatched bands and statistics', async () => {
    const gpu = await testGpu();
    const a = Tensor.empty(gpu, [2, 8, 3, 4]);
    expect(() => groupNormBandStats([a, Tensor.empty(gpu, [2, 8, 3, 5])], 4)).toThrow(/band 1/);
    expect(() => groupNormBandStats([a, Tensor.empty(gpu, [2, 8, 0, 4])], 4)).toThrow(/empty/);
    expect(() => groupNormBandStats([], 4)).toThrow(ShapeError);
    const stats = groupNormBandStats([a], 4);
    expect(() => groupNorm(a, { groups: 2, eps: 1e-5, bandStats: stats })).toThrow(/bandStats/);
    expect(() => groupNorm(Tensor.empty(gpu, [3, 8, 3, 4]), { groups: 4, eps: 1e-5, bandStats: stats })).toThrow(/bandStats/);
    const zq = Tensor.empty(gpu, [2, 8, 2, 2]);
    const w = Tensor.empty(gpu, [8]);
    expect(() => spatialNorm(a, zq, zq, { groups: 4, eps: 1e-6, weight: w, bias: w, bandStats: stats, band: { firstRow: 2, height: 4 } })).toThrow(/do not lie/);
  });
});
