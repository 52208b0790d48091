// The reverse-diffusion loop with classifier-free guidance (spec §2).
import type { Gpu } from '../gpu/gpu.ts';
import { NumericsError } from '../errors.ts';
import { axpby } from '../ops/elementwise.ts';
import { concat } from '../ops/layout.ts';
import { tidy } from '../tensor/scope.ts';
import { Tensor, numel } from '../tensor/tensor.ts';
import { gaussianNoise } from './noise.ts';
import type { Schedule } from './schedule.ts';
import { diffusionStep, stridedStep } from './step.ts';

/**
 * The model on a batch: `x` holds the conditional rows, followed by the same
 * rows again for the unconditional branch when `withUncond`; `time` is the
 * scaled model time. Returns the prediction for the whole batch.
 */
export type GuidedModel = (x: Tensor, time: number, withUncond: boolean) => Tensor;

export interface SampleOptions {
  schedule: Schedule;
  /** Latent shape [rows, C, h, w]. */
  shape: readonly number[];
  seed: number;
  /** Noise stream of this stage: the initial latent draws stream·2^16, step i draws stream·2^16 + 1 + i. */
  stream: number;
  /** w in (w + 1)·cond − w·uncond; 0 runs the conditional branch alone. */
  guidance: number;
  vPrediction: boolean;
  /**
   * Kandinsky 3's strided DDIM-style steps: the step indices, descending
   * (each step goes to the next index, the last to 0), and eta. Without it
   * every index n−1 … 0 is a full step (spec §2).
   */
  strided?: { times: readonly number[]; eta: number };
  model: GuidedModel;
  /** Stage name for progress and error messages. */
  stage: string;
  onStep?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export function noiseTensor(gpu: Gpu, shape: readonly number[], seed: number, stream: number): Tensor {
  return Tensor.from(gpu, gaussianNoise(seed, stream, numel(shape)), shape);
}

/** Runs every step (or the strided ones) down to index 0; returns the final latent. */
export async function sample(gpu: Gpu, o: SampleOptions): Promise<Tensor> {
  const last = o.schedule.config.timesteps - 1;
  const times = o.strided ? o.strided.times : Array.from({ length: last + 1 }, (_, k) => last - k);
  const n = times.length;
  const rows = o.shape[0];
  const withUncond = o.guidance !== 0;
  const vPrediction = o.vPrediction;
  let x = noiseTensor(gpu, o.shape, o.seed, o.stream * 65536);
  try {
    for (let done = 0; done < n; done++) {
      o.signal?.throwIfAborted();
      const i = times[done];
      const pred = tidy(() => {
        const batch = withUncond ? concat([x, x], 0) : x;
        const out = o.model(batch, i * o.schedule.timeScale, withUncond);
        if (!withUncond) return out;
        return axpby(o.guidance + 1, out.narrow(0, rows), -o.guidance, out.narrow(rows, rows));
      });
      const z = noiseTensor(gpu, o.shape, o.seed, o.stream * 65536 + 1 + done);
      let next: Tensor;
      try {
        const t = new Array<number>(rows).fill(i);
        next = o.strided
          ? await stridedStep(o.schedule, x, t, new Array<number>(rows).fill(times[done + 1] ?? 0), pred, z, { vPrediction, eta: o.strided.eta })
          : await diffusionStep(o.schedule, x, t, pred, z, { vPrediction });
      } catch (e) {
        if (e instanceof NumericsError) throw new NumericsError(`${o.stage}, step ${done + 1}/${n}: ${e.message}`);
        throw e;
      } finally {
        pred.dispose();
        z.dispose();
      }
      x.dispose();
      x = next;
      o.onStep?.(done + 1, n);
    }
    return x;
  } catch (e) {
    x.dispose();
    throw e;
  }
}
