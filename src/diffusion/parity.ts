// Parity module 'diffusion': one sampler step, guidance already applied:
// method "step" (spec §2) or "strided_step" (Kandinsky 3, args prev_t per
// row as the input 'prev_t' and eta).
import { FormatError } from '../errors.ts';
import type { HostTensor, LoadedCase } from '../parity/case.ts';
import { registerParityModule } from '../parity/registry.ts';
import { Tensor } from '../tensor/tensor.ts';
import { type ScheduleKind, makeSchedule } from './schedule.ts';
import { diffusionStep, stridedStep } from './step.ts';

function input(c: LoadedCase, name: string): HostTensor {
  const t = c.inputs.get(name);
  if (!t) throw new FormatError(`${c.dir}/inputs.safetensors`, `missing input '${name}'`);
  return t;
}

registerParityModule('diffusion', async (gpu, c) => {
  const cfg = c.spec.config;
  const where = `${c.dir}/case.json`;
  if (cfg.schedule !== 'cosine' && cfg.schedule !== 'linear') throw new FormatError(where, `config.schedule must be "cosine" or "linear"`);
  if (!Number.isInteger(cfg.timesteps)) throw new FormatError(where, 'config.timesteps must be an integer');
  const percentile = cfg.percentile ?? null;
  if (percentile !== null && typeof percentile !== 'number') throw new FormatError(where, 'config.percentile must be a number or null');
  const method = c.spec.method;
  if (method !== 'step' && method !== 'strided_step') throw new FormatError(where, `module diffusion has methods "step" and "strided_step", not "${method}"`);
  const eta = c.spec.args.eta;
  if (method === 'strided_step' && typeof eta !== 'number') throw new FormatError(where, 'args.eta must be a number for "strided_step"');
  const schedule = makeSchedule({ schedule: cfg.schedule as ScheduleKind, timesteps: cfg.timesteps as number, percentile });
  const x = input(c, 'x');
  const up = (h: HostTensor) => Tensor.from(gpu, h.data as Float32Array, h.shape);
  const [xt, pred, noise] = [up(x), up(input(c, 'pred')), up(input(c, 'noise'))];
  try {
    const t = [...input(c, 't').data];
    const vPrediction = Boolean(c.spec.args.v_prediction);
    const out =
      method === 'step'
        ? await diffusionStep(schedule, xt, t, pred, noise, { vPrediction })
        : await stridedStep(schedule, xt, t, [...input(c, 'prev_t').data], pred, noise, { vPrediction, eta: eta as number });
    const data = (await out.read()) as Float32Array;
    out.dispose();
    return { out: { shape: x.shape, data } };
  } finally {
    for (const t of [xt, pred, noise]) t.dispose();
  }
});
