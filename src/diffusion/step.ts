// One reverse-diffusion step on the GPU, for a batch whose dim-0 rows may be
// at different timesteps: the video sampler's full step (spec §2) and
// Kandinsky 3's strided DDIM-style step. Guidance is applied by the caller.
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

/** Per-row coefficients of a step's update: x_prev = x0c·clip(x0) + xc·x_t + noisec·z. */
interface UpdateCoefficients {
  x0: number[];
  x: number[];
  noise: number[];
}

function checkStepInputs(op: string, s: Schedule, x: Tensor, t: readonly number[], pred: Tensor, noise: Tensor): void {
  const rows = x.shape[0];
  if (t.length !== rows) throw new ShapeError(op, `${t.length} timesteps for ${rows} rows`);
  for (const v of [pred, noise]) {
    if (v.shape.join() !== x.shape.join()) throw new ShapeError(op, `shape ${shapeString(v.shape)} differs from x ${shapeString(x.shape)}`);
  }
  for (const i of t) {
    if (!Number.isInteger(i) || i < 0 || i >= s.config.timesteps) throw new ShapeError(op, `timestep ${i} outside 0..${s.config.timesteps - 1}`);
  }
}

/**
 * x0 from the prediction, thresholded, then the update. Dynamic thresholding
 * reads x0 back once to take each row's quantile on the host (torch.quantile's
 * linear rule).
 */
async function thresholdedUpdate(
  s: Schedule,
  x: Tensor,
  t: readonly number[],
  pred: Tensor,
  noise: Tensor,
  options: StepOptions,
  c: UpdateCoefficients,
): Promise<Tensor> {
  const rows = x.shape[0];
  const x0 = predictX0(s, x, t, pred, options);
  try {
    // x0 comes back to the host once per step: for each row's quantile, and
    // to catch a NaN or Inf within the step it appears in.
    const host = (await x0.read()) as Float32Array;
    const bad = host.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new NumericsError(`non-finite value ${host[bad]} in the predicted x0 at element ${bad} (timestep ${t[Math.floor(bad / (host.length / rows))]})`);
    const per = host.length / rows;
    const p = s.config.percentile;
    const thresholds = Array.from({ length: rows }, (_, r) => (p === null ? 1 : Math.max(1, absQuantile(host.subarray(r * per, (r + 1) * per), p))));
    return tidy(() => {
      const clipped = rowThreshold(x0, rowVector(x, thresholds));
      const mean = rowAxpby(clipped, rowVector(x, c.x0), x, rowVector(x, c.x));
      return rowAxpby(mean, rowVector(x, new Array(rows).fill(1)), noise, rowVector(x, c.noise));
    });
  } finally {
    x0.dispose();
  }
}

/**
 * x_{t-1} from x_t (spec §2, the video sampler). `t[r]` is row r's step
 * index; `noise` is standard normal (rows at t = 0 add none).
 */
export async function diffusionStep(s: Schedule, x: Tensor, t: readonly number[], pred: Tensor, noise: Tensor, options: StepOptions): Promise<Tensor> {
  checkStepInputs('diffusionStep', s, x, t, pred, noise);
  return thresholdedUpdate(s, x, t, pred, noise, options, {
    x0: t.map((i) => s.posteriorCoef1[i]),
    x: t.map((i) => s.posteriorCoef2[i]),
    noise: t.map((i) => (i === 0 ? 0 : Math.exp(0.5 * s.posteriorLogVariance[i]))),
  });
}

export interface StridedStepOptions extends StepOptions {
  /** 0: deterministic DDIM; 1 (Kandinsky 3's default): the DDPM posterior's variance. */
  eta: number;
}

/**
 * One strided step from index t to index prev < t (Kandinsky 3's
 * `BaseDiffusion.p_sample`, DDIM with eta), with ᾱ = alphasCumprod:
 *   x0 = thresholded prediction, ε' = (x − √ᾱ_t·x0)/√(1 − ᾱ_t),
 *   σ = √(eta·(1 − ᾱ_t/ᾱ_prev)·(1 − ᾱ_prev)/(1 − ᾱ_t)),
 *   x_prev = √ᾱ_prev·x0 + √(1 − ᾱ_prev − σ²)·ε' + [prev ≠ 0]·σ·z.
 * As upstream, prev = 0 reads ᾱ[0] (not 1): the last step lands on index 0.
 * ε' is folded into the coefficients of x0 and x.
 */
export async function stridedStep(
  s: Schedule,
  x: Tensor,
  t: readonly number[],
  prev: readonly number[],
  pred: Tensor,
  noise: Tensor,
  options: StridedStepOptions,
): Promise<Tensor> {
  checkStepInputs('stridedStep', s, x, t, pred, noise);
  if (prev.length !== t.length || prev.some((p, r) => !Number.isInteger(p) || p < 0 || p >= t[r])) {
    throw new ShapeError('stridedStep', `previous timesteps [${prev.join(', ')}] must be integers with 0 <= prev < t = [${t.join(', ')}]`);
  }
  if (!(options.eta >= 0)) throw new RangeError(`stridedStep: eta must be >= 0, got ${options.eta}`);
  const ac = s.alphasCumprod;
  const sigma = t.map((i, r) => Math.sqrt((options.eta * (1 - ac[i] / ac[prev[r]]) * (1 - ac[prev[r]])) / (1 - ac[i])));
  // Non-negative for eta <= 1; clamped so a larger eta degrades instead of giving NaN.
  const epsCoef = t.map((_, r) => Math.sqrt(Math.max(0, 1 - ac[prev[r]] - sigma[r] ** 2)));
  return thresholdedUpdate(s, x, t, pred, noise, options, {
    x0: t.map((i, r) => Math.sqrt(ac[prev[r]]) - (epsCoef[r] * Math.sqrt(ac[i])) / Math.sqrt(1 - ac[i])),
    x: t.map((i, r) => epsCoef[r] / Math.sqrt(1 - ac[i])),
    noise: prev.map((p, r) => (p === 0 ? 0 : sigma[r])),
  });
}

/**
 * Kandinsky 3's step indices for `steps` steps over an n-step schedule:
 * range(n − 1, 0, −(n // steps)), each step going to the next (the last to 0).
 * As upstream, the count is `steps` only when n // steps divides evenly enough
 * (e.g. 50 → 999, 979, …, 19; 7 gives 8 steps).
 */
export function stridedTimes(timesteps: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > timesteps) throw new RangeError(`diffusion: steps must be an integer in 1..${timesteps}, got ${steps}`);
  const stride = Math.floor(timesteps / steps);
  const times: number[] = [];
  for (let t = timesteps - 1; t > 0; t -= stride) times.push(t);
  return times;
}
