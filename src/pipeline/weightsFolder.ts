// Finds the files of a Kandinsky Video release in a folder: the upstream
// release as published, or the same converted by `kandinsky convert`.
import { FormatError, KandinskyError } from '../errors.ts';
import { MAX_CONFIG_JSON_BYTES, parseJsonText, readJsonText } from '../io/jsonFile.ts';
import { type MoVQConfig, IMAGE_MOVQ, parseMoVQConfig } from '../models/movq/config.ts';
import { type UNetConfig, parseUNetConfig, presetConfig } from '../models/unet/config.ts';

export interface WeightsFolder {
  dir: string;
  /** {'unet', 'projections', 'null_embedding'} */
  keyframe: string;
  /** {'unet', 'null_embedding'} */
  interpolation: string;
  /** The MoVQ state dict. */
  movq: string;
  /** A Hugging Face T5 folder: config.json, tokenizer.json, model weights. */
  textEncoder: string;
}

const EXPECTED = `A weights folder holds the Kandinsky Video 1.0 release as ai-forever publishes it
(KandinskyVideo on the Hugging Face Hub) and the Flan-UL2 text encoder (google/flan-ul2):
  kandinsky_video.pt                 keyframe U-Net, projections, null embedding
  kandinsky_video_interpolation.pt   interpolation U-Net, null embedding
  movq.pt                            MoVQ
  flan-ul2/                          config.json, tokenizer.json (or spiece.model),
                                     model.safetensors or model.safetensors.index.json + shards
Each .pt may instead be the .safetensors that \`kandinsky convert\` writes from it.`;

async function firstExisting(dir: string, names: readonly string[]): Promise<string | undefined> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  for (const n of names) {
    const p = path.join(dir, n);
    if (await fs.stat(p).then(() => true, () => false)) return p;
  }
  return undefined;
}

export async function resolveWeightsFolder(dir: string): Promise<WeightsFolder> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  if (!(await fs.stat(dir).then((s) => s.isDirectory(), () => false))) throw new KandinskyError(`--weights ${dir}: not a folder.\n${EXPECTED}`);
  const file = (base: string) => firstExisting(dir, [`${base}.safetensors`, `${base}.pt`]);
  const keyframe = await file('kandinsky_video');
  const interpolation = await file('kandinsky_video_interpolation');
  const movq = await file('movq');
  let textEncoder: string | undefined;
  for (const sub of ['flan-ul2', 'flan_ul2', 'text_encoder', 't5']) {
    const d = path.join(dir, sub);
    if (await fs.stat(path.join(d, 'config.json')).then(() => true, () => false)) {
      textEncoder = d;
      break;
    }
  }
  const missing = [
    keyframe ? null : 'kandinsky_video.pt',
    interpolation ? null : 'kandinsky_video_interpolation.pt',
    movq ? null : 'movq.pt',
    textEncoder ? null : 'flan-ul2/config.json',
  ].filter((m): m is string => m !== null);
  if (missing.length) throw new KandinskyError(`--weights ${dir}: missing ${missing.join(', ')}.\n${EXPECTED}`);
  return { dir, keyframe: keyframe!, interpolation: interpolation!, movq: movq!, textEncoder: textEncoder! };
}

/**
 * Model configurations: the released ones, or, when the weights folder has a
 * `config.json` ({"keyframe", "interpolation", "movq"}), those (e.g. the demo set).
 */
export interface ModelConfigs {
  keyframe: UNetConfig;
  interpolation: UNetConfig;
  movq: MoVQConfig;
}

/** The text of a weights folder's `config.json`, validated. */
export function parseModelConfigs(text: string, file: string): ModelConfigs {
  const raw = parseJsonText(text, file, MAX_CONFIG_JSON_BYTES);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(file, 'must hold an object {"keyframe", "interpolation", "movq"}');
  const sections = raw as Record<string, unknown>;
  return {
    keyframe: parseUNetConfig(sections.keyframe, `${file} keyframe`),
    interpolation: parseUNetConfig(sections.interpolation, `${file} interpolation`),
    movq: parseMoVQConfig(sections.movq, `${file} movq`),
  };
}

export async function readModelConfigs(dir: string): Promise<ModelConfigs> {
  const path = await import('node:path');
  const file = path.join(dir, 'config.json');
  const text = await readJsonText(file, MAX_CONFIG_JSON_BYTES, true);
  if (text === null) return { keyframe: presetConfig('keyframe'), interpolation: presetConfig('interpolation'), movq: IMAGE_MOVQ };
  return parseModelConfigs(text, file);
}
