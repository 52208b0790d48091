// Deterministic random weights for declared parameters: the demo checkpoint
// set and benchmarks with the real key layout but no trained weights. Each
// tensor's values depend only on (seed, key), so adding a module elsewhere
// never changes another tensor.
import { gaussianNoise } from '../diffusion/noise.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import type { Param } from './weights.ts';

function keyHash(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Values for one parameter: matrices and kernels ~ N(0, 1/fan_in); norm
 * scales 1 + small noise; biases small; scalars (merge parameters) 0.5.
 */
export function randomParamValues(p: Param, seed: number): Float32Array {
  const n = p.shape.reduce((a, b) => a * b, 1);
  const z = gaussianNoise(seed, keyHash(p.key) & 0xffff, n);
  if (n === 1) return Float32Array.of(0.5);
  if (p.shape.length >= 2) {
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    const s = 1 / Math.sqrt(fanIn);
    return z.map((v) => v * s);
  }
  // In these models every 1-D '.weight' is a norm's scale; biases are '.bias'.
  return p.key.endsWith('weight') ? z.map((v) => 1 + 0.1 * v) : z.map((v) => 0.02 * v);
}

export function randomTensors(params: readonly Param[], seed: number, prefix = ''): TensorToWrite[] {
  return params.map((p) => ({
    name: prefix + p.key,
    dtype: 'F32' as const,
    shape: p.shape,
    data: () => {
      const v = randomParamValues(p, seed);
      return Promise.resolve(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    },
  }));
}
