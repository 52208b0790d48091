// Writes Kandinsky 3.0 weights of the upstream layout as a diffusers folder
// (model_index.json, unet/, movq/, text_encoder/, tokenizer/), through the
// same key map the reader uses, tensor by tensor. diffusers has no place for
// upstream's null embedding (its pipeline uses an empty-prompt context
// instead), and its VQModel wants a codebook that Kandinsky 3 never uses
// (it decodes unquantized latents): a zero codebook is written.
import { KandinskyError } from '../errors.ts';
import type { Checkpoint } from '../io/checkpoint.ts';
import { kandinsky3DiffusersKeyMap, mappedCheckpoint } from '../io/keymap.ts';
import { type TensorToWrite, writeSafetensorsFile } from '../io/safetensors.ts';
import { readT5Config } from '../models/t5/config.ts';
import { detectUNetPrefix } from '../models/unet/unet.ts';
import { movqConfigToDiffusers, unetConfigToDiffusers } from './diffusersConfig.ts';
import type { ImageWeights } from './imageWeights.ts';

const TOKENIZER_FILES = new Set(['tokenizer.json', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json']);

function tensors(...views: Checkpoint[]): TensorToWrite[] {
  return views.flatMap((v) =>
    v.keys().map((k) => {
      const e = v.get(k)!;
      return { name: k, dtype: e.dtype, shape: e.shape, data: () => e.read() };
    }),
  );
}

export interface DiffusersExportOptions {
  /** Rows of the (unused, zero) codebook `quantize.embedding.weight`; diffusers' Kandinsky MoVQ has 16384. */
  codebookSize?: number;
}

export async function exportDiffusersImageFolder(source: ImageWeights, outDir: string, options: DiffusersExportOptions = {}): Promise<void> {
  if (source.layout !== 'upstream') throw new KandinskyError(`${source.dir} is already in the ${source.layout} layout`);
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const keymap = await kandinsky3DiffusersKeyMap();
  const dir = (name: string) => path.join(outDir, name);
  for (const d of ['unet', 'movq', 'text_encoder', 'tokenizer']) await fs.mkdir(dir(d), { recursive: true });

  const t5 = await readT5Config(path.join(source.textEncoder, 'config.json'));
  const unet = await source.openUNet();
  const projection = await source.openProjection();
  try {
    await writeSafetensorsFile(dir('unet/diffusion_pytorch_model.safetensors'), [
      ...tensors(mappedCheckpoint(unet, keymap, 'unet', { from: 'upstream', prefix: detectUNetPrefix(unet) })),
      ...tensors(mappedCheckpoint(projection, keymap, 'projection', { from: 'upstream', prefix: 't5.' })),
    ]);
  } finally {
    await unet.close();
    await projection.close();
  }
  await fs.writeFile(dir('unet/config.json'), `${JSON.stringify(unetConfigToDiffusers(source.unetConfig, t5.d_model), null, 2)}\n`);

  const codebookSize = options.codebookSize ?? 16384;
  const z = source.movqConfig.z_channels;
  const movq = await source.openMoVQ();
  try {
    const view = mappedCheckpoint(movq, keymap, 'movq', { from: 'upstream', vars: { levels: source.movqConfig.ch_mult.length } });
    await writeSafetensorsFile(dir('movq/diffusion_pytorch_model.safetensors'), [
      ...tensors(view),
      { name: 'quantize.embedding.weight', dtype: 'F32', shape: [codebookSize, z], data: new Uint8Array(4 * codebookSize * z) },
    ]);
  } finally {
    await movq.close();
  }
  await fs.writeFile(dir('movq/config.json'), `${JSON.stringify(movqConfigToDiffusers(source.movqConfig, codebookSize), null, 2)}\n`);

  for (const f of await fs.readdir(source.textEncoder)) {
    if (f.startsWith('projection.')) continue;
    await fs.copyFile(path.join(source.textEncoder, f), path.join(TOKENIZER_FILES.has(f) ? dir('tokenizer') : dir('text_encoder'), f));
  }
  const modelIndex = {
    _class_name: 'Kandinsky3Pipeline',
    movq: ['diffusers', 'VQModel'],
    text_encoder: ['transformers', 'T5EncoderModel'],
    tokenizer: ['transformers', 'T5Tokenizer'],
    unet: ['diffusers', 'Kandinsky3UNet'],
  };
  await fs.writeFile(dir('model_index.json'), `${JSON.stringify(modelIndex, null, 2)}\n`);
}
