// Parity module 'unet': every U-Net of the family (keyframe and its temporal
// variants, interpolation, text-to-image), told apart by the case's config.
// Inputs by upstream name: x, time (I64), context, context_mask (BOOL),
// temporal_embed (I64), skip_frames (I64); args: num_temporal_groups.
import type { Gpu } from '../../gpu/gpu.ts';
import { FormatError } from '../../errors.ts';
import type { WeightDType } from '../../nn/weights.ts';
import type { HostTensor, LoadedCase } from '../../parity/case.ts';
import { type ParityOutput, registerParityModule } from '../../parity/registry.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { parseUNetConfig } from './config.ts';
import { loadUNet } from './unet.ts';

const INPUTS = ['x', 'time', 'context', 'context_mask', 'temporal_embed', 'skip_frames'];
const ARGS = ['num_temporal_groups'];

function isInt(t: HostTensor): boolean {
  return ['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'].includes(t.dtype);
}

/** Runs a U-Net case with weights stored as `dtype` (the parity command uses f32). */
export async function runUNetCase(gpu: Gpu, c: LoadedCase, options: { dtype?: WeightDType } = {}): Promise<Record<string, ParityOutput>> {
  const where = `${c.dir}/case.json`;
  if (c.spec.method !== 'forward') throw new FormatError(where, `module unet has method "forward", not "${c.spec.method}"`);
  const unknownArgs = Object.keys(c.spec.args).filter((k) => !ARGS.includes(k));
  if (unknownArgs.length) throw new FormatError(where, `unknown args ${unknownArgs.join(', ')} (the U-Net takes ${ARGS.join(', ')})`);
  const groups = c.spec.args.num_temporal_groups ?? null;
  if (groups !== null && (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1)) {
    throw new FormatError(where, `args.num_temporal_groups must be a positive integer, got ${JSON.stringify(groups)}`);
  }
  const config = parseUNetConfig(c.spec.config, where);

  const inputsFile = `${c.dir}/inputs.safetensors`;
  const unknownInputs = [...c.inputs.keys()].filter((k) => !INPUTS.includes(k));
  if (unknownInputs.length) throw new FormatError(inputsFile, `unknown inputs ${unknownInputs.join(', ')} (the U-Net takes ${INPUTS.join(', ')})`);
  const host = (name: string, kind: 'float' | 'int'): HostTensor | null => {
    const t = c.inputs.get(name);
    if (!t) return null;
    if ((kind === 'int') !== isInt(t)) throw new FormatError(inputsFile, `'${name}' must be ${kind === 'int' ? 'an integer or bool' : 'a float'} tensor, got ${t.dtype}`);
    return t;
  };
  const x = host('x', 'float');
  const time = host('time', 'int');
  if (!x || !time) throw new FormatError(inputsFile, `needs 'x' and 'time'`);
  const context = host('context', 'float');
  const mask = host('context_mask', 'int');
  const temporalEmbed = host('temporal_embed', 'int');
  const skipFrames = host('skip_frames', 'int');

  const unet = await loadUNet(gpu, config, c.weights, { dtype: options.dtype ?? 'f32' });
  const uploaded: Tensor[] = [];
  const up = (t: HostTensor) => {
    const u = Tensor.from(gpu, t.data, t.shape, isInt(t) ? 'i32' : 'f32');
    uploaded.push(u);
    return u;
  };
  const ints = (t: HostTensor | null) => (t ? Int32Array.from(t.data) : null);
  try {
    const out = unet.forward({
      x: up(x),
      time: Int32Array.from(time.data),
      context: context ? up(context) : null,
      contextMask: mask ? up(mask) : null,
      temporalEmbed: ints(temporalEmbed),
      skipFrames: ints(skipFrames),
      numTemporalGroups: groups as number | null,
    });
    try {
      return { out: { shape: [...out.shape], data: (await out.read()) as Float32Array } };
    } finally {
      out.dispose();
    }
  } finally {
    for (const t of uploaded) t.dispose();
    unet.dispose();
  }
}

registerParityModule('unet', (gpu, c) => runUNetCase(gpu, c));
