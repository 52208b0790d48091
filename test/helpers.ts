// Shared test helpers: one GPU context per test file.
import { afterAll } from 'vitest';
import { Gpu } from '../src/gpu/gpu.ts';

let gpu: Promise<Gpu> | null = null;

export function testGpu(): Promise<Gpu> {
  if (!gpu) {
    gpu = Gpu.open();
    afterAll(async () => (await gpu!).destroy());
  }
  return gpu;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Deterministic pseudo-random values in [-1, 1) (mulberry32). */
export function randomArray(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

/** Runs fn with storage bindings limited to `bytes`, so tensors split into parts. */
export async function withBindingLimit<T>(gpu: Gpu, bytes: number, fn: () => Promise<T>): Promise<T> {
  Object.defineProperty(gpu, 'maxBinding', { value: bytes, configurable: true });
  try {
    return await fn();
  } finally {
    delete (gpu as { maxBinding?: number }).maxBinding;
  }
}
