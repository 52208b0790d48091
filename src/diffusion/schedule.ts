// Beta schedules and every derived coefficient, in f64 on the host
// (kandinsky-video-spec.md §2). Betas are rounded to f32 as upstream holds them.

export type ScheduleKind = 'cosine' | 'linear';

export interface ScheduleConfig {
  schedule: ScheduleKind;
  timesteps: number;
  /** Dynamic-threshold percentile (e.g. 0.98), or null to clip x0 to [-1, 1]. */
  percentile: number | null;
}

export interface Schedule {
  readonly config: ScheduleConfig;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  readonly alphasCumprodPrev: Float64Array;
  /** Posterior mean coefficients: mean = coef1·x0 + coef2·x_t. */
  readonly posteriorCoef1: Float64Array;
  readonly posteriorCoef2: Float64Array;
  /** log of the posterior variance, its first entry replaced by the second. */
  readonly posteriorLogVariance: Float64Array;
  /** The model is called with t · timeScale. */
  readonly timeScale: number;
}

function cosineAlphaBar(t: number): number {
  return Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
}

export function betaSchedule(kind: ScheduleKind, n: number): Float64Array {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`diffusion: timesteps must be an integer >= 2, got ${n}`);
  const betas = new Float64Array(n);
  if (kind === 'linear') {
    const scale = 1000 / n;
    const lo = scale * 1e-4;
    const hi = scale * 0.02;
    for (let i = 0; i < n; i++) betas[i] = Math.fround(lo + ((hi - lo) * i) / (n - 1));
  } else if (kind === 'cosine') {
    for (let i = 0; i < n; i++) betas[i] = Math.fround(Math.min(1 - cosineAlphaBar((i + 1) / n) / cosineAlphaBar(i / n), 0.999));
  } else {
    throw new RangeError(`diffusion: unknown schedule '${kind as string}' (cosine or linear)`);
  }
  return betas;
}

export function makeSchedule(config: ScheduleConfig): Schedule {
  const n = config.timesteps;
  const betas = betaSchedule(config.schedule, n);
  const ac = new Float64Array(n);
  const acPrev = new Float64Array(n);
  let prod = 1;
  for (let i = 0; i < n; i++) {
    acPrev[i] = prod;
    prod *= 1 - betas[i];
    ac[i] = prod;
  }
  const c1 = new Float64Array(n);
  const c2 = new Float64Array(n);
  const variance = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    c1[i] = (Math.sqrt(acPrev[i]) * betas[i]) / (1 - ac[i]);
    c2[i] = (Math.sqrt(1 - betas[i]) * (1 - acPrev[i])) / (1 - ac[i]);
    variance[i] = (betas[i] * (1 - acPrev[i])) / (1 - ac[i]);
  }
  const logVar = new Float64Array(n);
  for (let i = 0; i < n; i++) logVar[i] = Math.log(variance[i === 0 ? 1 : i]);
  if (config.percentile !== null && !(config.percentile > 0 && config.percentile <= 1)) {
    throw new RangeError(`diffusion: percentile must be in (0, 1] or null, got ${config.percentile}`);
  }
  return {
    config,
    betas,
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    posteriorCoef1: c1,
    posteriorCoef2: c2,
    posteriorLogVariance: logVar,
    timeScale: Math.floor(1000 / n),
  };
}

/** torch.quantile (linear interpolation) of |values|. */
export function absQuantile(values: Float32Array, q: number): number {
  const abs = Float32Array.from(values, Math.abs).sort();
  const pos = q * (abs.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, abs.length - 1);
  return abs[lo] + (abs[hi] - abs[lo]) * (pos - lo);
}
