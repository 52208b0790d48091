// Pipeline stages: progress with elapsed time, and per-stage timing and peak
// device memory. Buffers cached for one stage's shapes are dropped when it
// ends: they are useless to the next model.
import type { Gpu } from '../gpu/gpu.ts';

export interface StageProgress<S extends string = string> {
  stage: S;
  done: number;
  total: number;
  /** Milliseconds since the stage started. */
  elapsedMs: number;
}

export interface StageTimingOf<S extends string = string> {
  stage: S;
  ms: number;
  /** Peak bytes the device held during the stage. */
  peakBytes: number;
}

export class Stages<S extends string> {
  readonly timings: StageTimingOf<S>[] = [];
  /** Peak bytes the device held over every stage so far. */
  peakBytes = 0;

  constructor(
    private readonly gpu: Gpu,
    private readonly onProgress?: (p: StageProgress<S>) => void,
    private readonly signal?: AbortSignal,
  ) {}

  async run<T>(name: S, fn: (progress: (done: number, total: number) => void) => Promise<T>): Promise<T> {
    this.signal?.throwIfAborted();
    this.gpu.pool.resetPeak();
    const t0 = performance.now();
    const progress = (done: number, total: number) => this.onProgress?.({ stage: name, done, total, elapsedMs: performance.now() - t0 });
    progress(0, 1);
    const out = await fn(progress);
    await this.gpu.sync();
    const peakBytes = this.gpu.pool.stats().peakDeviceBytes;
    this.peakBytes = Math.max(this.peakBytes, peakBytes);
    this.timings.push({ stage: name, ms: performance.now() - t0, peakBytes });
    this.gpu.pool.trim();
    return out;
  }
}
