import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { type AttentionVariant, attention, selectAttentionVariant, temporalAttention, temporalAttention3d } from '../../src/ops/attention.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, randomArray, testGpu } from '../helpers.ts';

// Tolerance: max|ours − torch| ≤ ATOL + RTOL·max|ref| (torch in float64).
// A score is a dot product of D ≤ 256 terms with |scale·q·k| < 1 per term
// on these inputs; rounding in f32 grows like √D·2⁻²⁴ ≈ 1e-6 at D = 256, and
// a score error δ scales the softmax weights by e^±δ. Outputs are averages of
// |v| ≤ 1, so their error is of the same order (the largest seen: 1.8e-7,
// head_dim 256). The bound is about 10× that.
const ATOL = 1e-6;
const RTOL = 1e-6;

const cases = await loadOpCases('attention');

function byName(name: string): OpCase {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`fixture case ${name} missing`);
  return c;
}

async function runCase(c: OpCase, variant?: AttentionVariant): Promise<{ diff: number; limit: number }> {
  const gpu = await testGpu();
  const t = c.tensors;
  const up = (name: string, dtype: 'f32' | 'i32' = 'f32') => Tensor.from(gpu, t[name].data, t[name].shape, dtype);
  const [q, k, v] = [up('q'), up('k'), up('v')];
  const p = c.params as { op: string; heads: number; scale?: number; frames?: number; height?: number; width?: number };
  let out: Tensor;
  if (p.op === 'attention') {
    const mask = t.mask ? up('mask', 'i32') : undefined;
    const bias = t.bias ? up('bias') : undefined;
    out = attention(q, k, v, { heads: p.heads, scale: p.scale, mask, bias, variant });
    mask?.dispose();
    bias?.dispose();
  } else if (p.op === 'temporalAttention') {
    out = temporalAttention(q, k, v, { heads: p.heads, frames: p.frames!, variant });
  } else {
    out = temporalAttention3d(q, k, v, { heads: p.heads, frames: p.frames!, height: p.height!, width: p.width!, variant });
  }
  const got = await out.read();
  for (const x of [q, k, v, out]) x.dispose();
  const ref = t.out.data;
  return { diff: maxAbsDiff(got, ref), limit: ATOL + RTOL * maxAbs(ref) };
}

/**
 * Temporal attention in f64 on [videos·frames, height·width, heads·d]: the
 * query at (frame t, pixel) attends to every frame of the same pixel, or with
 * `neighbourhood` of the pixels of its 3×3 neighbourhood inside the frame.
 */
function temporalReference(x: { q: Float32Array; k: Float32Array; v: Float32Array }, videos: number, frames: number, height: number, width: number, heads: number, d: number, neighbourhood: boolean): Float64Array {
  const pixels = height * width;
  const c = heads * d;
  const at = (b: number, t: number, pixel: number, h: number) => ((b * frames + t) * pixels + pixel) * c + h * d;
  const out = new Float64Array(videos * frames * pixels * c);
  for (let b = 0; b < videos; b++) {
    for (let pixel = 0; pixel < pixels; pixel++) {
      const [y, xx] = [Math.floor(pixel / width), pixel % width];
      const keys: number[] = [];
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const inside = y + dy >= 0 && y + dy < height && xx + dx >= 0 && xx + dx < width;
          if ((neighbourhood && inside) || (dy === 0 && dx === 0)) keys.push((y + dy) * width + xx + dx);
        }
      }
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < frames; t++) {
          const qi = at(b, t, pixel, h);
          const rows = keys.flatMap((kp) => Array.from({ length: frames }, (_, tk) => at(b, tk, kp, h)));
          const scores = rows.map((kj) => {
            let dotp = 0;
            for (let e = 0; e < d; e++) dotp += x.q[qi + e] * x.k[kj + e];
            return dotp / Math.sqrt(d);
          });
          const m = Math.max(...scores);
          const w = scores.map((sc) => Math.exp(sc - m));
          const sum = w.reduce((a, b2) => a + b2, 0);
          rows.forEach((vj, j) => {
            for (let e = 0; e < d; e++) out[qi + e] += (w[j] / sum) * x.v[vj + e];
          });
        }
      }
    }
  }
  return out;
}

describe('attention', () => {
  it('has fixtures for every mode', () => {
    expect(cases.map((c) => c.name).sort()).toEqual(
      ['cross_d64', 'cross_d8', 'self_d32', 'self_d64', 'self_d8', 't5_d256', 't5_d32', 'temporal3d_d64', 'temporal3d_d8', 'temporal_d64', 'temporal_d8'].sort(),
    );
  });

  // The adapter's default kernel on every case (the subgroup kernel on lavapipe).
  for (const name of ['self_d8', 'self_d64', 'self_d32', 'cross_d8', 'cross_d64', 'temporal_d8', 'temporal_d64', 'temporal3d_d8', 'temporal3d_d64', 't5_d32', 't5_d256']) {
    it(`matches torch: ${name}`, async () => {
      const { diff, limit } = await runCase(byName(name));
      expect(diff).toBeLessThanOrEqual(limit);
    });
  }

  // The other kernels (GPUs: tiled; CPU adapters without subgroups: direct;
  // the bench baseline and head_dim > 256: naive) on small heads, where each
  // specialisation compiles in seconds on lavapipe.
  const others: [AttentionVariant, string][] = [
    ['tiled', 'cross_d8'],
    ['tiled', 'temporal3d_d8'],
    ['direct', 'cross_d8'],
    ['naive', 'cross_d8'],
    ['naive', 't5_d32'],
    ['naive', 'temporal3d_d8'],
  ];
  for (const [variant, name] of others) {
    it(`${variant} kernel matches torch: ${name}`, async () => {
      const { diff, limit } = await runCase(byName(name), variant);
      expect(diff).toBeLessThanOrEqual(limit);
    });
  }

  // Shapes that fill no tile: odd pixel counts, frames not a multiple of a
  // subgroup or key block, several videos, head_dim 32 (one short sub-row)
  // and 68 (two sub-rows), against a float64 reference. Every kernel on the
  // first and last; the default (on lavapipe the subgroup kernel) and naive on all.
  const temporalShapes = [
    { videos: 2, frames: 7, height: 1, width: 5, heads: 2, d: 32, neighbourhood: false },
    { videos: 1, frames: 3, height: 3, width: 1, heads: 1, d: 68, neighbourhood: false },
    { videos: 2, frames: 3, height: 3, width: 5, heads: 2, d: 12, neighbourhood: true },
  ];
  for (const variant of [undefined, 'direct', 'tiled', 'naive'] as const) {
    for (const [index, sh] of temporalShapes.entries()) {
      if ((variant === 'direct' || variant === 'tiled') && index === 1) continue;
      const name = `${sh.neighbourhood ? 'temporalAttention3d' : 'temporalAttention'} ${sh.videos}x${sh.frames} frames, ${sh.height}x${sh.width} pixels, ${sh.heads} heads of ${sh.d}`;
      it(`${variant ?? 'default'} kernel matches a float64 reference: ${name}`, async () => {
        const gpu = await testGpu();
        const shape = [sh.videos * sh.frames, sh.height * sh.width, sh.heads * sh.d];
        const n = shape[0] * shape[1] * shape[2];
        const x = { q: randomArray(n, 11), k: randomArray(n, 12), v: randomArray(n, 13) };
        const [q, k, v] = [x.q, x.k, x.v].map((a) => Tensor.from(gpu, a, shape));
        const o = { heads: sh.heads, frames: sh.frames, variant };
        const out = sh.neighbourhood ? temporalAttention3d(q, k, v, { ...o, height: sh.height, width: sh.width }) : temporalAttention(q, k, v, o);
        const got = await out.read();
        for (const t of [q, k, v, out]) t.dispose();
        const ref = temporalReference(x, sh.videos, sh.frames, sh.height, sh.width, sh.heads, sh.d, sh.neighbourhood);
        expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(ATOL + RTOL * maxAbs(ref));
      });
    }
  }

  it('picks the fused kernels up to head_dim 256 and naive past it', async () => {
    const gpu = await testGpu();
    expect(selectAttentionVariant(gpu, 256)).not.toBe('naive');
    expect(selectAttentionVariant(gpu, 260)).toBe('naive');
    expect(() => selectAttentionVariant(gpu, 64, 'bogus')).toThrow(/KANDINSKY_ATTENTION_VARIANT/);
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const x = Tensor.empty(gpu, [2, 5, 24]);
    const y = Tensor.empty(gpu, [3, 5, 24]);
    const mask = Tensor.empty(gpu, [2, 4], 'i32');
    expect(() => attention(x, x, x, { heads: 5 })).toThrow(ShapeError);
    expect(() => attention(x, x, x, { heads: 4 })).toThrow(/multiple of 4/);
    expect(() => attention(x, y, y, { heads: 2 })).toThrow(/multiple of 3 key rows/);
    expect(() => attention(x, x, x, { heads: 2, mask })).toThrow(/mask must be/);
    expect(() => temporalAttention(x, x, x, { heads: 2, frames: 3 })).toThrow(/whole videos/);
    expect(() => temporalAttention3d(x, x, x, { heads: 2, frames: 2, height: 2, width: 3 })).toThrow(/pixels/);
    for (const t of [x, y, mask]) t.dispose();
  });
});
