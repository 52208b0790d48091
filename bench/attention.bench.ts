// Attention benchmarks (shape: heads x queries x keys x head_dim):
//   attention_self      the U-Net's spatial self-attention at 64×64 tokens, 8 heads of 64
//   attention_cross     4096 queries over 128 text tokens (the last 40 masked), 24 heads of
//                       64 (C = 1536, the U-Net's widest cross-attention level)
//   attention_temporal  15 frames at each of 1024 pixels (32×32), 6 heads of 64 (C = 384)
// flops = 4·heads·queries·keys·head_dim (times the pixels for temporal): the
// two products q·kᵀ and p·v; the softmax is not counted. The temporal row
// also gives its memory traffic (q, k, v read and out written once: 94 MB,
// 3.8 FLOP per byte), as GB/s beside the copy peak: on lavapipe every
// storage load or store is a bounds-checked scalar access per lane and
// component, and with its score and value loops removed the subgroup kernel
// still took about 2/3 of its time at this shape (measured, noisy). `naive` runs the
// three-pass kernel on the same shape (self-attention: on one head, scaled).
import type { Gpu } from '../src/gpu/gpu.ts';
import { type AttentionVariant, attention, selectAttentionVariant, temporalAttention } from '../src/ops/attention.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';

/** Deterministic values in [-1, 1] (test/helpers imports vitest, so not that). */
function rand(gpu: Gpu, shape: number[], seed: number): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 12.9898);
  return Tensor.from(gpu, data, shape);
}

/** The case's variant field names the kernel that ran, known once the adapter is. */
function describe(c: BenchCase, gpu: Gpu, headDim: number): void {
  c.variant = `${selectAttentionVariant(gpu, headDim)} kernel`;
}

/** naiveHeads: heads the naive kernel runs (its time is scaled to all of them: heads are independent work). */
function spatialCase(op: string, heads: number, lq: number, lk: number, d: number, masked: number, naiveHeads = heads): BenchCase {
  const c: BenchCase = {
    op,
    shape: `${heads}x${lq}x${lk}x${d}`,
    dtype: 'f32',
    variant: 'default kernel',
    flops: 4 * heads * lq * lk * d,
    setup(gpu): BenchRun {
      describe(c, gpu, d);
      const q = rand(gpu, [1, lq, heads * d], 1);
      const k = rand(gpu, [1, lk, heads * d], 2);
      const v = rand(gpu, [1, lk, heads * d], 3);
      const mask = masked > 0 ? Tensor.from(gpu, Int32Array.from({ length: lk }, (_, j) => (j < lk - masked ? 1 : 0)), [1, lk], 'i32') : undefined;
      const run = (variant?: AttentionVariant) => () => attention(q, k, v, { heads, mask, variant }).dispose();
      const slice = naiveHeads < heads ? [rand(gpu, [1, lq, naiveHeads * d], 1), rand(gpu, [1, lk, naiveHeads * d], 2), rand(gpu, [1, lk, naiveHeads * d], 3)] : [];
      return {
        run: run(),
        naive: slice.length ? () => attention(slice[0], slice[1], slice[2], { heads: naiveHeads, mask, variant: 'naive' }).dispose() : run('naive'),
        naiveFraction: naiveHeads / heads,
        dispose: () => [q, k, v, mask, ...slice].forEach((t) => t?.dispose()),
      };
    },
  };
  return c;
}

function temporalCase(heads: number, frames: number, pixels: number, d: number): BenchCase {
  const c: BenchCase = {
    op: 'attention_temporal',
    shape: `${heads}x${frames}x${frames}x${d}`,
    dtype: 'f32',
    variant: 'default kernel',
    flops: 4 * heads * frames * frames * d * pixels,
    bytes: 4 * 4 * frames * pixels * heads * d,
    setup(gpu): BenchRun {
      describe(c, gpu, d);
      c.variant += `, ${pixels} pixels`;
      const shape = [frames, pixels, heads * d];
      const [q, k, v] = [rand(gpu, shape, 4), rand(gpu, shape, 5), rand(gpu, shape, 6)];
      const run = (variant?: AttentionVariant) => () => temporalAttention(q, k, v, { heads, frames, variant }).dispose();
      return {
        run: run(),
        naive: run('naive'),
        dispose: () => [q, k, v].forEach((t) => t.dispose()),
      };
    },
  };
  return c;
}

export const benches: BenchCase[] = [
  // The naive self-attention takes over a minute on lavapipe: timed on one head of 8.
  spatialCase('attention_self', 8, 4096, 4096, 64, 0, 1),
  spatialCase('attention_cross', 24, 4096, 128, 64, 40),
  temporalCase(6, 15, 1024, 64),
];
