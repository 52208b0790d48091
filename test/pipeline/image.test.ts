// Kandinsky 3.0 text to image end to end on tiny demo-style weights, from the
// upstream layout and from the diffusers folder exported from it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResourceError } from '../../src/errors.ts';
import { KandinskyError } from '../../src/errors.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';
import { IMAGE_MOVQ, type MoVQConfig } from '../../src/models/movq/config.ts';
import { presetConfig } from '../../src/models/unet/config.ts';
import { DEMO_IMAGE_CONFIG, writeDemoImageWeights } from '../../src/pipeline/demoWeights.ts';
import { movqConfigFromDiffusers, movqConfigToDiffusers, unetConfigFromDiffusers, unetConfigToDiffusers } from '../../src/pipeline/diffusersConfig.ts';
import { exportDiffusersImageFolder } from '../../src/pipeline/diffusersExport.ts';
import { type ImageOptions, generateImage } from '../../src/pipeline/image.ts';
import { resolveImageWeights } from '../../src/pipeline/imageWeights.ts';
import { testGpu } from '../helpers.ts';

const tokenizer = fileURLToPath(new URL('../fixtures/tokenizer/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kandinsky-image-'));
const upstream = join(root, 'upstream');
const diffusers = join(root, 'diffusers');

beforeAll(async () => {
  mkdirSync(upstream);
  await writeDemoImageWeights(upstream, tokenizer);
  await exportDiffusersImageFolder(await resolveImageWeights(upstream), diffusers, { codebookSize: 16 });
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function run(weights: string, o: Partial<ImageOptions> = {}) {
  return generateImage({ prompt: 'A red car', negativePrompt: 'blurry', weights, width: 64, height: 128, steps: 3, guidance: 3, gpu: await testGpu(), ...o });
}

async function contents(c: Checkpoint): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const k of c.keys()) {
    const e = c.get(k)!;
    out.set(k, `${e.dtype} [${e.shape.join(',')}] ${Buffer.from(await e.read()).toString('base64')}`);
  }
  await c.close();
  return out;
}

describe('text to image (Kandinsky 3.0)', () => {
  it('detects both layouts; upstream → diffusers → upstream gives every tensor back unchanged', async () => {
    const up = await resolveImageWeights(upstream);
    const diff = await resolveImageWeights(diffusers);
    expect([up.layout, diff.layout]).toEqual(['upstream', 'diffusers']);
    expect(diff.unetConfig).toEqual(up.unetConfig);
    // The nominal resolution differs (diffusers has none); where attention sits does not.
    const attentionLevels = (c: MoVQConfig) => c.ch_mult.map((_, i) => c.attn_resolutions.includes(c.resolution >> i));
    expect({ ...diff.movqConfig, resolution: 0, attn_resolutions: [] }).toEqual({ ...up.movqConfig, resolution: 0, attn_resolutions: [] });
    expect(attentionLevels(diff.movqConfig)).toEqual(attentionLevels(up.movqConfig));
    const bare = async (c: Checkpoint) => new Map([...(await contents(c))].flatMap(([k, v]) => (k.startsWith('unet.') ? [[k.slice(5), v]] : [])));
    expect(await contents(await diff.openUNet())).toEqual(await bare(await up.openUNet()));
    expect(await contents(await diff.openProjection())).toEqual(await contents(await up.openProjection()));
    expect(await contents(await diff.openMoVQ())).toEqual(await contents(await up.openMoVQ()));
  });

  it('makes the same image from either layout (with a negative prompt), seeded', async () => {
    const a = await run(upstream);
    expect(a.image.width).toBe(64);
    expect(a.image.height).toBe(128);
    expect(a.timings.map((t) => t.stage)).toEqual(['text', 'denoise', 'decode']);
    expect(new Set(a.image.data).size).toBeGreaterThan(16);
    const b = await run(diffusers);
    expect(b.layout).toBe('diffusers');
    expect(b.image.data).toEqual(a.image.data);
    expect((await run(upstream, { seed: 1 })).image.data).not.toEqual(a.image.data);
  }, 120_000);

  it("without a negative prompt: upstream's null embedding, diffusers' empty prompt", async () => {
    const steps: number[] = [];
    const a = await run(upstream, { negativePrompt: undefined, onProgress: (p) => p.stage === 'denoise' && steps.push(p.done) });
    expect(steps.at(-1)).toBe(3);
    const b = await run(diffusers, { negativePrompt: undefined });
    expect(b.image.data).not.toEqual(a.image.data);
  }, 120_000);

  it('refuses a size the adapter cannot run before any weights load, with the numbers', async () => {
    const t0 = performance.now();
    const err = await run(upstream, { width: 8192, height: 8192 }).catch((e) => e);
    expect(err).toBeInstanceOf(ResourceError);
    expect(err.message).toMatch(/^8192x8192, f32 weights: .* needs [\d.]+ [MG]iB, [\d.]+ [MG]iB available/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('lists what a folder misses, per layout', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    await expect(resolveImageWeights(empty)).rejects.toThrow(/upstream layout, but missing kandinsky3\.pt, movq\.pt, flan_ul2_encoder\/config\.json/);
    const partial = join(root, 'partial');
    mkdirSync(join(partial, 'unet'), { recursive: true });
    writeFileSync(join(partial, 'model_index.json'), '{}');
    const error = await resolveImageWeights(partial).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KandinskyError);
    expect(String(error)).toMatch(/diffusers layout, but missing unet\/diffusion_pytorch_model\.safetensors, unet\/config\.json, movq\/.*tokenizer\/spiece\.model/);
    expect(String(error)).toMatch(/text_encoder\/ *config\.json, model\.safetensors/);
  });

  it('reads and writes the diffusers configs of the release and the demo', () => {
    for (const c of [presetConfig('text_to_image'), presetConfig('text_to_image', DEMO_IMAGE_CONFIG.unet)]) {
      expect(unetConfigFromDiffusers(unetConfigToDiffusers(c, 4096), 'unet/config.json')).toEqual({ unet: c, encoderHidDim: 4096 });
    }
    expect(() => unetConfigToDiffusers(presetConfig('keyframe'), 4096)).toThrow(/video model/);
    expect(movqConfigFromDiffusers(movqConfigToDiffusers(IMAGE_MOVQ, 16384), 'movq/config.json')).toEqual(IMAGE_MOVQ);
    expect(movqConfigToDiffusers(IMAGE_MOVQ, 16384)).toMatchObject({
      block_out_channels: [256, 512, 512, 1024],
      down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D'],
      up_block_types: ['AttnUpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
      layers_per_block: 2,
    });
    expect(() => movqConfigFromDiffusers({ ...movqConfigToDiffusers(IMAGE_MOVQ, 16), norm_type: 'group' }, 'movq/config.json')).toThrow(/norm_type/);
  });
});
