// Parity module 'diffusion': one sampler step, guidance already applied.
import { FormatError } from '../errors.ts';
import type { HostTensor, LoadedCase } from '../parity/case.ts';
import { registerParityModule } from '../parity/registry.ts';
import { Tensor } from '../tensor/tensor.ts';
import { type ScheduleKind, makeSchedule } from './schedule.ts';
import { diffusionStep } from './step.ts';

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
  if (c.spec.method !== 'step') throw new FormatError(where, `module diffusion has method "step", not "${c.spec.method}"`);
  const schedule = makeSchedule({ schedule: cfg.schedule as ScheduleKind, timesteps: cfg.timesteps as number, percentile });
  const x = input(c, 'x');
  const up = (h: HostTensor) => Tensor.from(gpu, h.data as Float32Array, h.shape);
  const [xt, pred, noise] = [up(x), up(input(c, 'pred')), up(input(c, 'noise'))];
  try {
    const out = await diffusionStep(schedule, xt, [...input(c, 't').data], pred, noise, { vPrediction: Boolean(c.spec.args.v_prediction) });
    const data = (await out.read()) as Float32Array;
    out.dispose();
    return { out: { shape: x.shape, data } };
  } finally {
    for (const t of [xt, pred, noise]) t.dispose();
  }
});
