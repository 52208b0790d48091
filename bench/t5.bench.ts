// One real-size Flan-UL2 encoder layer (spec §7): d_model 4096, d_ff 16384,
// 16 heads × 256, gated-SiLU feed-forward, 128 tokens, random weights in f16
// storage (0.54 GB per layer). Op 't5_layer'; the whole encoder is 32 such
// layers (plus an embedding gather and one RMS norm, negligible), so
// 32 × ms projects the T5 stage.
import type { Gpu } from '../src/gpu/gpu.ts';
import { FLAN_UL2, type T5Config } from '../src/models/t5/config.ts';
import { type Shared, T5Encoder } from '../src/models/t5/encoder.ts';
import { f32ArrayToF16 } from '../src/tensor/half.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';

const TOKENS = 128;

/** FLOPs of one layer on L tokens: 7 projections (q, k, v, o, wi_0, wi_1, wo) and the two attention products. */
export function t5LayerFlops(c: T5Config, tokens: number): number {
  const inner = c.num_heads * c.d_kv;
  const projections = 2 * tokens * (4 * c.d_model * inner + 3 * c.d_model * c.d_ff);
  const attention = 2 * 2 * c.num_heads * tokens * tokens * c.d_kv;
  return projections + attention;
}

/**
 * Random weights without generating hundreds of millions of values: one
 * block of N(0, 1/fan_in)-like halves tiled over the tensor (timing does not
 * depend on the values, only on their being finite and of a sane size).
 */
function randomWeight(gpu: Gpu, shape: readonly number[], f16: boolean, seed: number): Tensor {
  const n = numel(shape);
  const block = new Float32Array(Math.min(n, 1 << 20));
  const scale = shape.length >= 2 ? 1 / Math.sqrt(shape[shape.length - 1]) : 0.1;
  for (let i = 0; i < block.length; i++) block[i] = Math.sin(seed * 7.31 + i * 12.9898) * scale * 1.7 + (shape.length >= 2 ? 0 : 1);
  if (!f16) {
    const all = new Float32Array(n);
    for (let at = 0; at < n; at += block.length) all.set(block.subarray(0, Math.min(block.length, n - at)), at);
    return Tensor.from(gpu, all, shape, 'f32', { persistent: true });
  }
  const halves = f32ArrayToF16(block);
  const all = new Uint16Array(n);
  for (let at = 0; at < n; at += halves.length) all.set(halves.subarray(0, Math.min(halves.length, n - at)), at);
  return Tensor.fromBytes(gpu, new Uint8Array(all.buffer), shape, 'f16', { persistent: true });
}

function layerCase(): BenchCase {
  // One layer and a tiny vocabulary: only block 0 runs (it holds the bias table).
  const config: T5Config = { ...FLAN_UL2, num_layers: 1, vocab_size: 8 };
  return {
    op: 't5_layer',
    shape: `${TOKENS}x${config.d_model}x${config.d_ff}x${config.num_heads}x${config.d_kv}`,
    dtype: 'f16 weights, f32 compute',
    variant: 'Flan-UL2 layer: RMS norm, q/k/v/o, attention (scale 1, relative bias, key mask), gated-SiLU FF',
    flops: t5LayerFlops(config, TOKENS),
    setup(gpu): BenchRun {
      const enc = new T5Encoder(config);
      enc.params().forEach((p, i) => p.set(randomWeight(gpu, p.shape, p.allowF16, i + 1)));
      const mask = new Int32Array(TOKENS).fill(1);
      mask.fill(0, 100); // a realistic prompt: 100 tokens, the rest padding
      const shared: Shared = enc.shared(1, TOKENS, mask);
      const x = Tensor.from(
        gpu,
        Float32Array.from({ length: TOKENS * config.d_model }, (_, i) => Math.sin(i * 0.37)),
        [1, TOKENS, config.d_model],
      );
      return {
        run: () => enc.runBlock(0, x, shared).dispose(),
        dispose: () => {
          x.dispose();
          shared.bias.dispose();
          shared.mask.dispose();
          enc.dispose();
        },
      };
    },
  };
}

export const benches: BenchCase[] = [layerCase()];
