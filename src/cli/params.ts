// `kandinsky params unet --preset keyframe`: parameter and tensor counts of a
// model, computed from its declarations alone (no GPU, no checkpoint), and
// the bytes its weights take in f32 and with f16 storage (matrices and
// kernels f16, vectors and scalars f32, as loadWeights stores them).
import { UsageError } from '../errors.ts';
import { UNET_PRESETS, isUNetPreset, presetConfig } from '../models/unet/config.ts';
import { UNet } from '../models/unet/unet.ts';
import { type Param, WeightBuilder } from '../nn/weights.ts';
import { numel, storageBytes } from '../tensor/tensor.ts';

export interface ParamsSummary {
  model: string;
  preset: string;
  parameters: number;
  tensors: number;
  f32_bytes: number;
  f16_bytes: number;
  /** Per top-level module (first key component, e.g. down_samples.2). */
  modules: { name: string; parameters: number; tensors: number }[];
}

export const PARAMS_MODELS = ['unet'] as const;

function moduleName(key: string): string {
  const parts = key.split('.');
  // Levels are the interesting unit of the U-Net's lists.
  return parts[0] === 'down_samples' || parts[0] === 'up_samples' ? parts.slice(0, 2).join('.') : parts[0];
}

export function summarize(model: string, preset: string, params: readonly Param[]): ParamsSummary {
  const modules = new Map<string, { parameters: number; tensors: number }>();
  let parameters = 0;
  let f32 = 0;
  let f16 = 0;
  for (const p of params) {
    const n = numel(p.shape);
    parameters += n;
    f32 += storageBytes('f32', n);
    f16 += storageBytes(p.allowF16 ? 'f16' : 'f32', n);
    const m = modules.get(moduleName(p.key)) ?? { parameters: 0, tensors: 0 };
    m.parameters += n;
    m.tensors++;
    modules.set(moduleName(p.key), m);
  }
  return {
    model,
    preset,
    parameters,
    tensors: params.length,
    f32_bytes: f32,
    f16_bytes: f16,
    modules: [...modules].map(([name, m]) => ({ name, ...m })),
  };
}

export function unetParams(preset: string): ParamsSummary {
  if (!isUNetPreset(preset)) throw new UsageError(`params: unknown U-Net preset '${preset}' (presets: ${Object.keys(UNET_PRESETS).join(', ')})`);
  const unet = new UNet(new WeightBuilder(), presetConfig(preset));
  return summarize('unet', preset, unet.params());
}

const fmt = (n: number) => n.toLocaleString('en-US');
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

export function formatParams(s: ParamsSummary): string {
  const width = Math.max(...s.modules.map((m) => m.name.length));
  return [
    `${s.model} ${s.preset}: ${fmt(s.parameters)} parameters in ${fmt(s.tensors)} tensors`,
    `weights: ${gib(s.f32_bytes)} f32 (${fmt(s.f32_bytes)} bytes), ${gib(s.f16_bytes)} with f16 storage (${fmt(s.f16_bytes)} bytes)`,
    '',
    ...s.modules.map((m) => `  ${m.name.padEnd(width)}  ${fmt(m.parameters).padStart(13)}  ${String(m.tensors).padStart(5)} tensors`),
  ].join('\n');
}

export async function paramsCommand(model: string, preset: string, options: { json?: boolean } = {}): Promise<number> {
  if (!(PARAMS_MODELS as readonly string[]).includes(model)) throw new UsageError(`params: unknown model '${model}' (models: ${PARAMS_MODELS.join(', ')})`);
  const s = unetParams(preset);
  process.stdout.write(options.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatParams(s)}\n`);
  return 0;
}
