// One reverse-diffusion step (spec §2) on the GPU, for a batch whose dim-0
// rows may be at different timesteps. Guidance is applied by the caller.
import { NumericsError, ShapeError } from '../errors.ts';
import { rowAxpby, rowThreshold } from '../ops/elementwise.ts';
import { tidy } from '../tensor/scope.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { type Schedule, absQuantile } from './schedule.ts';

export interface StepOptions {
  /** The model predicts v (interpolation model) instead of eps. */
  vPrediction: boolean;
}

function rowVector(x: Tensor, values: number[]): Tensor {
  return Tensor.from(x.gpu, Float32Array.from(values), [values.length]);
}

/** x0 predicted from x_t and the (guided) model output, per row. */
export function predictX0(s: Schedule, x: Tensor, t: readonly number[], pred: Tensor, options: StepOptions): Tensor {
  const ac = t.map((i) => s.alphasCumprod[i]);
  const ca = options.vPrediction ? ac.map(Math.sqrt) : ac.map((a) => 1 / Math.sqrt(a));
  const cb = options.vPrediction ? ac.map((a) => -Math.sqrt(1 - a)) : ac.map((a) => -Math.sqrt(1 - a) / Math.sqrt(a));
  return tidy(() => rowAxpby(x, rowVector(x, ca), pred, rowVector(x, cb)));
}

/**
 * x_{t-1} from x_t. `t[r]` is row r's step index; `noise` is standard normal
 * (unused rows at t = 0 add none). Dynamic thresholding reads x0 back once to
 * take each row's quantile on the host (torch.quantile's linear rule).
 */
export async function diffusionStep(s: Schedule, x: Tensor, t: readonly number[], pred: Tensor, noise: Tensor, options: StepOptions): Promise<Tensor> {
  const rows = x.shape[0];
  if (t.length !== rows) throw new ShapeError('diffusionStep', `${t.length} timesteps for ${rows} rows`);
  for (const v of [pred, noise]) {
    if (v.shape.join() !== x.shape.join()) throw new ShapeError('diffusionStep', `shape ${shapeString(v.shape)} differs from x ${shapeString(x.shape)}`);
  }
  for (const i of t) {
    if (!Number.isInteger(i) || i < 0 || i >= s.config.timesteps) throw new ShapeError('diffusionStep', `timestep ${i} outside 0..${s.config.timesteps - 1}`);
  }
  const x0 = predictX0(s, x, t, pred, options);
  let thresholds: number[];
  try {
    // x0 comes back to the host once per step: for each row's quantile, and
    // to catch a NaN or Inf within the step it appears in.
    const host = (await x0.read()) as Float32Array;
    const bad = host.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new NumericsError(`non-finite value ${host[bad]} in the predicted x0 at element ${bad} (timestep ${t[Math.floor(bad / (host.length / rows))]})`);
    const per = host.length / rows;
    const p = s.config.percentile;
    thresholds = Array.from({ length: rows }, (_, r) => (p === null ? 1 : Math.max(1, absQuantile(host.subarray(r * per, (r + 1) * per), p))));
    return tidy(() => {
      const clipped = rowThreshold(x0, rowVector(x, thresholds));
      const mean = rowAxpby(clipped, rowVector(x, t.map((i) => s.posteriorCoef1[i])), x, rowVector(x, t.map((i) => s.posteriorCoef2[i])));
      const sigma = t.map((i) => (i === 0 ? 0 : Math.exp(0.5 * s.posteriorLogVariance[i])));
      return rowAxpby(mean, rowVector(x, new Array(rows).fill(1)), noise, rowVector(x, sigma));
    });
  } finally {
    x0.dispose();
  }
}
