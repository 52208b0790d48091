// Finds Kandinsky 3.0 text-to-image weights in a folder, in either layout,
// and opens each model's checkpoint under the key names our modules declare:
//   - upstream (ai-forever/Kandinsky3.1, its `weights/` folder): kandinsky3.pt
//     {'unet', 'null_embedding'}, movq.pt, flan_ul2_encoder/ (T5 folder with
//     projection.pt); the folder itself or its `weights/` subfolder;
//   - diffusers (kandinsky-community/kandinsky-3): model_index.json, unet/,
//     movq/, text_encoder/, tokenizer/, read through the key map in
//     weights/keymaps/kandinsky3-diffusers.json.
import { KandinskyError } from '../errors.ts';
import type { Checkpoint } from '../io/checkpoint.ts';
import { type KeyLayout, KeyMap, kandinsky3DiffusersKeyMap, mappedCheckpoint, prefixedCheckpoint } from '../io/keymap.ts';
import { openCheckpointFile } from '../io/open.ts';
import { type MoVQConfig, IMAGE_MOVQ, parseMoVQConfig } from '../models/movq/config.ts';
import { T5_WEIGHT_FILES } from '../models/t5/encoder.ts';
import { type UNetConfig, parseUNetConfig, presetConfig } from '../models/unet/config.ts';
import { movqConfigFromDiffusers, unetConfigFromDiffusers } from './diffusersConfig.ts';

export type ImageWeightsLayout = KeyLayout;

export interface ImageWeights {
  layout: ImageWeightsLayout;
  dir: string;
  unetConfig: UNetConfig;
  movqConfig: MoVQConfig;
  /** T5 encoder folder: config.json and the weights. */
  textEncoder: string;
  /** Folder with tokenizer.json or spiece.model. */
  tokenizer: string;
  /** The U-Net under its upstream keys (bare, or under 'unet.' as in kandinsky3.pt). */
  openUNet(): Promise<Checkpoint>;
  /** The text projection as `t5.0.weight`, `t5.1.weight`, `t5.1.bias`. */
  openProjection(): Promise<Checkpoint>;
  /** The MoVQ under its upstream keys. */
  openMoVQ(): Promise<Checkpoint>;
  /** Upstream's null embedding; null in the diffusers layout, which has none. */
  readNullEmbedding(): Promise<Float32Array | null>;
}

const IMAGE_WEIGHTS_EXPECTED = `A Kandinsky 3.0 weights folder is one of:
  upstream (ai-forever/Kandinsky3.1 on the Hugging Face Hub, the folder or its weights/):
    kandinsky3.pt                  U-Net and null embedding ({'unet', 'null_embedding'})
    movq.pt                        MoVQ
    flan_ul2_encoder/              config.json, tokenizer.json or spiece.model, model.safetensors
                                   (or an index and shards), projection.pt
    (each .pt may be the .safetensors that \`kandinsky convert\` writes from it)
  diffusers (kandinsky-community/kandinsky-3):
    model_index.json
    unet/                          config.json, diffusion_pytorch_model.safetensors (or an index and shards)
    movq/                          config.json, diffusion_pytorch_model.safetensors
    text_encoder/                  config.json, model.safetensors (or an index and shards)
    tokenizer/                     spiece.model or tokenizer.json`;

/** Weight files of a diffusers component, in order of preference (fp16 variants, named as diffusers does, after). */
const DIFFUSERS_WEIGHT_FILES = [
  'diffusion_pytorch_model.safetensors.index.json',
  'diffusion_pytorch_model.safetensors',
  'diffusion_pytorch_model.safetensors.index.fp16.json',
  'diffusion_pytorch_model.fp16.safetensors',
  'diffusion_pytorch_model.bin',
];

async function exists(p: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

async function firstExisting(dir: string, names: readonly string[]): Promise<string | undefined> {
  const path = await import('node:path');
  for (const n of names) if (await exists(path.join(dir, n))) return path.join(dir, n);
  return undefined;
}

async function readJson(file: string): Promise<unknown> {
  const fs = await import('node:fs/promises');
  const text = await fs.readFile(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new KandinskyError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

function missingError(dir: string, layout: ImageWeightsLayout, missing: string[]): KandinskyError {
  return new KandinskyError(`--weights ${dir}: ${layout} layout, but missing ${missing.join(', ')}.\n${IMAGE_WEIGHTS_EXPECTED}`);
}

/** Reads a vector from a checkpoint as f32. */
async function readVector(ckpt: Checkpoint, key: string): Promise<Float32Array | null> {
  const e = ckpt.get(key);
  if (!e) return null;
  const { decodeF32 } = await import('../io/decode.ts');
  return decodeF32(await e.read(), e.dtype, `${ckpt.source}: '${key}'`);
}

async function upstreamWeights(dir: string): Promise<ImageWeights> {
  const path = await import('node:path');
  const file = (d: string, base: string) => firstExisting(d, [`${base}.safetensors`, `${base}.pt`]);
  const unetFile = await file(dir, 'kandinsky3');
  const movqFile = await file(dir, 'movq');
  const text = path.join(dir, 'flan_ul2_encoder');
  const projectionFile = await file(text, 'projection');
  const missing = [
    unetFile ? null : 'kandinsky3.pt',
    movqFile ? null : 'movq.pt',
    (await exists(path.join(text, 'config.json'))) ? null : 'flan_ul2_encoder/config.json',
    (await firstExisting(text, T5_WEIGHT_FILES)) ? null : `flan_ul2_encoder/ weights (${T5_WEIGHT_FILES.join(' or ')})`,
    (await firstExisting(text, ['tokenizer.json', 'spiece.model'])) ? null : 'flan_ul2_encoder/tokenizer.json or spiece.model',
    projectionFile ? null : 'flan_ul2_encoder/projection.pt',
  ].filter((m): m is string => m !== null);
  if (missing.length) throw missingError(dir, 'upstream', missing);
  // Our own small configurations (the demo set) come as config.json {"unet", "movq"}; the release has none.
  const configFile = path.join(dir, 'config.json');
  const raw = (await exists(configFile)) ? ((await readJson(configFile)) as Record<string, unknown>) : null;
  return {
    layout: 'upstream',
    dir,
    unetConfig: raw ? parseUNetConfig(raw.unet, `${configFile} unet`) : presetConfig('text_to_image'),
    movqConfig: raw ? parseMoVQConfig(raw.movq, `${configFile} movq`) : IMAGE_MOVQ,
    textEncoder: text,
    tokenizer: text,
    // {'unet': ..., 'null_embedding': ...}: loadUNet finds the 'unet.' prefix.
    openUNet: () => openCheckpointFile(unetFile!),
    openProjection: async () => prefixedCheckpoint(await openCheckpointFile(projectionFile!), 't5.'),
    openMoVQ: () => openCheckpointFile(movqFile!),
    readNullEmbedding: async () => {
      const ckpt = await openCheckpointFile(unetFile!);
      try {
        const v = await readVector(ckpt, 'null_embedding');
        if (!v) throw new KandinskyError(`${unetFile}: no 'null_embedding' (upstream's kandinsky3.pt holds {'unet', 'null_embedding'})`);
        return v;
      } finally {
        await ckpt.close();
      }
    },
  };
}

async function diffusersWeights(dir: string, keymap: KeyMap): Promise<ImageWeights> {
  const path = await import('node:path');
  const sub = (name: string) => path.join(dir, name);
  const unetFile = await firstExisting(sub('unet'), DIFFUSERS_WEIGHT_FILES);
  const movqFile = await firstExisting(sub('movq'), DIFFUSERS_WEIGHT_FILES);
  const missing = [
    unetFile ? null : `unet/${DIFFUSERS_WEIGHT_FILES[1]}`,
    (await exists(sub('unet/config.json'))) ? null : 'unet/config.json',
    movqFile ? null : `movq/${DIFFUSERS_WEIGHT_FILES[1]}`,
    (await exists(sub('movq/config.json'))) ? null : 'movq/config.json',
    (await exists(sub('text_encoder/config.json'))) ? null : 'text_encoder/config.json',
    (await firstExisting(sub('text_encoder'), T5_WEIGHT_FILES)) ? null : `text_encoder/ weights (${T5_WEIGHT_FILES.join(' or ')})`,
    (await firstExisting(sub('tokenizer'), ['tokenizer.json', 'spiece.model'])) ? null : 'tokenizer/spiece.model or tokenizer.json',
  ].filter((m): m is string => m !== null);
  if (missing.length) throw missingError(dir, 'diffusers', missing);
  const unet = unetConfigFromDiffusers(await readJson(sub('unet/config.json')), sub('unet/config.json'));
  const movqConfig = movqConfigFromDiffusers(await readJson(sub('movq/config.json')), sub('movq/config.json'));
  const levels = movqConfig.ch_mult.length;
  return {
    layout: 'diffusers',
    dir,
    unetConfig: unet.unet,
    movqConfig,
    textEncoder: sub('text_encoder'),
    tokenizer: sub('tokenizer'),
    openUNet: async () => mappedCheckpoint(await openCheckpointFile(unetFile!), keymap, 'unet', { from: 'diffusers' }),
    openProjection: async () => prefixedCheckpoint(mappedCheckpoint(await openCheckpointFile(unetFile!), keymap, 'projection', { from: 'diffusers' }), 't5.'),
    openMoVQ: async () => mappedCheckpoint(await openCheckpointFile(movqFile!), keymap, 'movq', { from: 'diffusers', vars: { levels } }),
    readNullEmbedding: async () => null,
  };
}

/** The weights in `dir`, by layout: diffusers when model_index.json or unet/config.json is there, else upstream. */
export async function resolveImageWeights(dir: string): Promise<ImageWeights> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  if (!(await fs.stat(dir).then((s) => s.isDirectory(), () => false))) throw new KandinskyError(`--weights ${dir}: not a folder.\n${IMAGE_WEIGHTS_EXPECTED}`);
  if ((await exists(path.join(dir, 'model_index.json'))) || (await exists(path.join(dir, 'unet', 'config.json')))) {
    return diffusersWeights(dir, await kandinsky3DiffusersKeyMap());
  }
  const release = path.join(dir, 'weights');
  const inRelease = !(await firstExisting(dir, ['kandinsky3.pt', 'kandinsky3.safetensors'])) && (await firstExisting(release, ['kandinsky3.pt', 'kandinsky3.safetensors']));
  return upstreamWeights(inRelease ? release : dir);
}

/** Reads the projection's LayerNorm bias (`t5.1.bias`): diffusers' empty-prompt context is made of it. */
export async function readProjectionNormBias(ckpt: Checkpoint): Promise<Float32Array> {
  const v = await readVector(ckpt, 't5.1.bias');
  if (!v) throw new KandinskyError(`${ckpt.source}: no projection LayerNorm bias`);
  return v;
}
