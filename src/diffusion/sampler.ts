// The reverse-diffusion loop with classifier-free guidance (spec §2).
import type { Gpu } from '../gpu/gpu.ts';
import { NumericsError } from '../errors.ts';
import { axpby } from '../ops/elementwise.ts';
import { concat } from '../ops/layout.ts';
import { tidy } from '../tensor/scope.ts';
import { Tensor, numel } from '../tensor/tensor.ts';
import { gaussianNoise } from './noise.ts';
import type { Schedule } from './schedule.ts';
import { diffusionStep } from './step.ts';

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
  model: GuidedModel;
  /** Stage name for progress and error messages. */
  stage: string;
  onStep?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export function noiseTensor(gpu: Gpu, shape: readonly number[], seed: number, stream: number): Tensor {
  return Tensor.from(gpu, gaussianNoise(seed, stream, numel(shape)), shape);
}

/** Runs every step from t = n−1 down to 0; returns the final latent. */
export async function sample(gpu: Gpu, o: SampleOptions): Promise<Tensor> {
  const n = o.schedule.config.timesteps;
  const rows = o.shape[0];
  const withUncond = o.guidance !== 0;
  let x = noiseTensor(gpu, o.shape, o.seed, o.stream * 65536);
  try {
    for (let i = n - 1, done = 0; i >= 0; i--, done++) {
      o.signal?.throwIfAborted();
      const pred = tidy(() => {
        const batch = withUncond ? concat([x, x], 0) : x;
        const out = o.model(batch, i * o.schedule.timeScale, withUncond);
        if (!withUncond) return out;
        return axpby(o.guidance + 1, out.narrow(0, rows), -o.guidance, out.narrow(rows, rows));
      });
      const z = noiseTensor(gpu, o.shape, o.seed, o.stream * 65536 + 1 + done);
      let next: Tensor;
      try {
        next = await diffusionStep(o.schedule, x, new Array(rows).fill(i), pred, z, { vPrediction: o.vPrediction });
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
