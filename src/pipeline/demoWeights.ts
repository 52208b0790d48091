// The demo checkpoint set: tiny models with the real key layout and
// deterministic random (untrained) weights, written as a weights folder that
// `generateVideo` reads exactly like the real release. Built on first use.
import { writeSafetensorsFile, type TensorToWrite } from '../io/safetensors.ts';
import { parseMoVQConfig } from '../models/movq/config.ts';
import { MoVQ } from '../models/movq/movq.ts';
import { KandinskyProjection } from '../models/t5/conditioning.ts';
import { parseT5Config } from '../models/t5/config.ts';
import { T5Encoder } from '../models/t5/encoder.ts';
import { parseUNetConfig } from '../models/unet/config.ts';
import { UNet } from '../models/unet/unet.ts';
import { randomTensors } from '../nn/init.ts';
import { WeightBuilder } from '../nn/weights.ts';
import { gaussianNoise } from '../diffusion/noise.ts';

const SEED = 20231122;

const UNET_TINY = {
  model_channels: 16,
  init_channels: 8,
  time_embed_dim: 32,
  context_dim: 32,
  groups: 4,
  head_dim: 8,
  expansion_ratio: 4,
  compression_ratio: 2,
  dim_mult: [1, 2],
  num_blocks: [2, 2],
  add_cross_attention: [false, true],
  add_self_attention: [false, true],
};

export const DEMO_CONFIG = {
  keyframe: { ...UNET_TINY, num_channels: 4, out_channels: 4, num_frames: 15, interpolation: false },
  interpolation: { ...UNET_TINY, num_channels: 20, out_channels: 12, num_frames: null, interpolation: true },
  // 4 levels: latents are 1/8 of the frame size, as in the release.
  movq: {
    ch: 32,
    ch_mult: [1, 1, 2, 2],
    num_res_blocks: 1,
    attn_resolutions: [8],
    z_channels: 4,
    resolution: 64,
    in_channels: 3,
    out_ch: 3,
    double_z: false,
    dropout: 0,
    temporal: true,
    temporal_attention_block: true,
    // (3,1,1) rather than the release's (3,3,3): 9x cheaper at the demo's size.
    temporal_kernel_size: [3, 1, 1],
    temporal_conv_padding: [1, 0, 0],
  },
};

/**
 * The Kandinsky 3.0 text-to-image demo set (upstream layout, see
 * imageWeights.ts): the keyframe U-Net's tiny widths without frames, and the
 * demo MoVQ's image decoder.
 */
export const DEMO_IMAGE_CONFIG = {
  unet: { ...UNET_TINY, num_channels: 4, out_channels: 4 },
  movq: {
    ch: DEMO_CONFIG.movq.ch,
    ch_mult: DEMO_CONFIG.movq.ch_mult,
    num_res_blocks: DEMO_CONFIG.movq.num_res_blocks,
    attn_resolutions: DEMO_CONFIG.movq.attn_resolutions,
    z_channels: DEMO_CONFIG.movq.z_channels,
    resolution: DEMO_CONFIG.movq.resolution,
    in_channels: 3,
    out_ch: 3,
    double_z: false,
    dropout: 0,
  },
};

function vector(name: string, length: number, stream: number): TensorToWrite {
  const v = gaussianNoise(SEED, stream, length);
  return { name, dtype: 'F32', shape: [length], data: new Uint8Array(v.buffer) };
}

/** Writes the demo set into `dir` (which must exist); the tokenizer comes from `tokenizerDir`. */
export async function writeDemoWeights(dir: string, tokenizerDir: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const t5 = parseT5Config(JSON.parse(await fs.readFile(path.join(tokenizerDir, 'config.json'), 'utf8')));
  const keyframe = new UNet(new WeightBuilder(), parseUNetConfig(DEMO_CONFIG.keyframe));
  const projection = new KandinskyProjection({ inDim: t5.d_model, contextDim: UNET_TINY.context_dim });
  await writeSafetensorsFile(path.join(dir, 'kandinsky_video.safetensors'), [
    ...randomTensors(keyframe.params(), SEED, 'unet.'),
    ...randomTensors(projection.params(), SEED, 'projections.'),
    vector('null_embedding', UNET_TINY.context_dim, 1),
  ]);
  const interpolation = new UNet(new WeightBuilder(), parseUNetConfig(DEMO_CONFIG.interpolation));
  await writeSafetensorsFile(path.join(dir, 'kandinsky_video_interpolation.safetensors'), [
    ...randomTensors(interpolation.params(), SEED + 1, 'unet.'),
    vector('null_embedding', UNET_TINY.context_dim, 2),
  ]);
  const movq = new MoVQ(parseMoVQConfig(DEMO_CONFIG.movq));
  await writeSafetensorsFile(path.join(dir, 'movq.safetensors'), randomTensors(movq.params(), SEED + 2));
  await writeTextEncoder(path.join(dir, 'flan-ul2'), tokenizerDir);
  await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(DEMO_CONFIG, null, 2)}\n`);
}

/** A tiny T5 folder: config.json and tokenizer.json from `tokenizerDir`, random model.safetensors. */
async function writeTextEncoder(text: string, tokenizerDir: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const t5 = parseT5Config(JSON.parse(await fs.readFile(path.join(tokenizerDir, 'config.json'), 'utf8')));
  await fs.mkdir(text, { recursive: true });
  await writeSafetensorsFile(path.join(text, 'model.safetensors'), randomTensors(new T5Encoder(t5).params(), SEED + 3));
  for (const f of ['config.json', 'tokenizer.json']) await fs.copyFile(path.join(tokenizerDir, f), path.join(text, f));
}

/**
 * Writes the Kandinsky 3.0 demo set into `dir` (which must exist) in the
 * upstream release's layout: kandinsky3.safetensors {unet.*, null_embedding},
 * movq.safetensors, flan_ul2_encoder/ with projection.safetensors (keys
 * 0.weight, 1.weight, 1.bias), and config.json {"unet", "movq"}.
 */
export async function writeDemoImageWeights(dir: string, tokenizerDir: string): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const t5 = parseT5Config(JSON.parse(await fs.readFile(path.join(tokenizerDir, 'config.json'), 'utf8')));
  const unet = new UNet(new WeightBuilder(), parseUNetConfig(DEMO_IMAGE_CONFIG.unet));
  await writeSafetensorsFile(path.join(dir, 'kandinsky3.safetensors'), [
    ...randomTensors(unet.params(), SEED + 4, 'unet.'),
    vector('null_embedding', UNET_TINY.context_dim, 5),
  ]);
  const movq = new MoVQ(parseMoVQConfig(DEMO_IMAGE_CONFIG.movq));
  await writeSafetensorsFile(path.join(dir, 'movq.safetensors'), randomTensors(movq.params(), SEED + 5));
  const text = path.join(dir, 'flan_ul2_encoder');
  await writeTextEncoder(text, tokenizerDir);
  const projection = new KandinskyProjection({ inDim: t5.d_model, contextDim: UNET_TINY.context_dim });
  // projection.pt is the bare nn.Sequential state dict: our 't5.' level is not in it.
  const bare = randomTensors(projection.params(), SEED + 6).map((t) => ({ ...t, name: t.name.replace(/^t5\./, '') }));
  await writeSafetensorsFile(path.join(text, 'projection.safetensors'), bare);
  await fs.writeFile(path.join(dir, 'config.json'), `${JSON.stringify(DEMO_IMAGE_CONFIG, null, 2)}\n`);
}

/** The demo folder, built when missing (weights/demo under the package). */
export async function ensureDemoWeights(): Promise<string> {
  const fs = await import('node:fs/promises');
  const { fileURLToPath } = await import('node:url');
  const dir = fileURLToPath(new URL('../../weights/demo/', import.meta.url));
  // Rebuilt when missing or made by another version of DEMO_CONFIG.
  const current = await fs.readFile(`${dir}config.json`, 'utf8').catch(() => '');
  if (current === `${JSON.stringify(DEMO_CONFIG, null, 2)}\n`) return dir;
  const tmp = `${dir.replace(/\/$/, '')}.partial-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  try {
    await writeDemoWeights(tmp, fileURLToPath(new URL('../../test/fixtures/tokenizer/', import.meta.url)));
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(tmp, dir);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}
