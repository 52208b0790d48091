// The U-Net beyond the parity cases: loading the same weights from every
// checkpoint layout, strict-loading errors, f16 weights, the real presets'
// parameter counts (from declarations alone) and leak-free forwards.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WeightError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import type { Checkpoint, TensorEntry } from '../../src/io/checkpoint.ts';
import { openCheckpointFile } from '../../src/io/open.ts';
import { WeightBuilder, type WeightDType } from '../../src/nn/weights.ts';
import { type LoadedCase, loadCase } from '../../src/parity/case.ts';
import { compare } from '../../src/parity/run.ts';
import { UNET_PRESETS, type UNetConfig, isUNetPreset, parseUNetConfig, presetConfig } from '../../src/models/unet/config.ts';
import { runUNetCase } from '../../src/models/unet/parity.ts';
import { UNet, detectUNetPrefix, loadUNet } from '../../src/models/unet/unet.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { maxAbs, maxAbsDiff, testGpu } from '../helpers.ts';

const root = new URL('../fixtures/parity/', import.meta.url).pathname;
const keyframeDir = join(root, 'unet_keyframe_blocks');

/** Runs the keyframe_blocks case's inputs through a loaded U-Net. */
async function forwardCase(gpu: Gpu, unet: UNet, c: LoadedCase): Promise<Float32Array> {
  const input = (name: string) => c.inputs.get(name)!;
  const x = Tensor.from(gpu, input('x').data, input('x').shape);
  const context = Tensor.from(gpu, input('context').data, input('context').shape);
  const mask = Tensor.from(gpu, input('context_mask').data, input('context_mask').shape, 'i32');
  try {
    const out = unet.forward({
      x,
      time: Int32Array.from(input('time').data),
      context,
      contextMask: mask,
      temporalEmbed: Int32Array.from(input('temporal_embed').data),
    });
    const data = (await out.read()) as Float32Array;
    out.dispose();
    return data;
  } finally {
    for (const t of [x, context, mask]) t.dispose();
  }
}

function config(c: LoadedCase): UNetConfig {
  return parseUNetConfig(c.spec.config, c.dir);
}

/** A checkpoint with one edit: a key dropped, a key added, or a key's shape changed. */
function edited(base: Checkpoint, edit: { drop?: string; add?: string; reshape?: [string, number[]] }): Checkpoint {
  const keys = base.keys().filter((k) => k !== edit.drop);
  const extra: TensorEntry | undefined = edit.add ? { name: edit.add, dtype: 'F32', shape: [2], byteLength: 8, read: async () => new Uint8Array(8) } : undefined;
  if (edit.add) keys.push(edit.add);
  return {
    source: 'edited checkpoint',
    metadata: {},
    keys: () => keys,
    get: (k) => {
      if (k === edit.drop) return undefined;
      if (k === edit.add) return extra;
      const e = base.get(k);
      if (e && edit.reshape && k === edit.reshape[0]) return { ...e, shape: edit.reshape[1], read: e.read.bind(e) };
      return e;
    },
    close: async () => {},
  };
}

describe('U-Net loading', () => {
  it('loads the same weights from weights.safetensors, checkpoint.pt and checkpoint.safetensors (prefix unet.)', async () => {
    const gpu = await testGpu();
    const c = await loadCase(keyframeDir);
    try {
      const cfg = config(c);
      const reference = c.outputs.get('out')!.data;
      const fromWeights = await loadUNet(gpu, cfg, c.weights);
      const base = await forwardCase(gpu, fromWeights, c);
      fromWeights.dispose();
      expect(compare('out', base, reference, c.spec.atol, c.spec.rtol).pass).toBe(true);
      for (const file of ['checkpoint.pt', 'checkpoint.safetensors']) {
        const ckpt = await openCheckpointFile(join(keyframeDir, file));
        try {
          // The explicit prefix (.pt) and the detected one (.safetensors) read the
          // nested 'unet' dict and leave 'projections'/'null_embedding' alone.
          const prefix = file.endsWith('.pt') ? 'unet.' : undefined;
          expect(detectUNetPrefix(ckpt)).toBe('unet.');
          const unet = await loadUNet(gpu, cfg, ckpt, { prefix });
          const out = await forwardCase(gpu, unet, c);
          unet.dispose();
          expect(maxAbsDiff(out, base), file).toBe(0);
        } finally {
          await ckpt.close();
        }
      }
    } finally {
      await c.close();
    }
  });

  it('refuses a checkpoint with a missing, an unexpected or a mis-shaped key, naming it', async () => {
    const gpu = await testGpu();
    const c = await loadCase(keyframeDir);
    try {
      const cfg = config(c);
      const live = gpu.pool.stats().liveBytes;
      const dropped = 'down_samples.1.resnet_attn_blocks.0.3.temporal_resnet_blocks.1.2.weight';
      await expect(loadUNet(gpu, cfg, edited(c.weights, { drop: dropped }))).rejects.toThrow(new RegExp(`missing keys \\(1\\):\\n  ${dropped.replace(/\./g, '\\.')}`));
      await expect(loadUNet(gpu, cfg, edited(c.weights, { add: 'up_samples.0.bogus.weight' }))).rejects.toThrow(/unexpected keys \(1\):\n {2}up_samples\.0\.bogus\.weight/);
      const reshaped: [string, number[]] = ['feature_pooling.attention.to_key.weight', [16, 25]];
      await expect(loadUNet(gpu, cfg, edited(c.weights, { reshape: reshaped }))).rejects.toThrow(
        /shape mismatches \(1\):\n {2}feature_pooling\.attention\.to_key\.weight: checkpoint \[16, 25\], model \[16, 24\]/,
      );
      await expect(loadUNet(gpu, cfg, edited(c.weights, { drop: 'in_layer.bias' }))).rejects.toBeInstanceOf(WeightError);
      // The wrong config is a strict error too: the interpolation model's keys are not the keyframe model's.
      await expect(loadUNet(gpu, parseUNetConfig({ ...c.spec.config, interpolation: true, num_channels: 20, out_channels: 12 }), c.weights)).rejects.toThrow(
        /missing keys[\s\S]*skip_embeddings\.weight[\s\S]*unexpected keys[\s\S]*to_temporal_embed/,
      );
      // Nothing was uploaded before the check failed.
      expect(gpu.pool.stats().liveBytes).toBe(live);
    } finally {
      await c.close();
    }
  });

  it('runs with f16 weights within 5e-3 of max|out| of the f32 reference', async () => {
    // f16 storage rounds each weight by up to u = 2^-11 ≈ 4.9e-4 relative
    // (compute stays f32). Through the ~40 layers from input to output these
    // add up to 0.7e-3 - 2.8e-3 of max|out| on the eight cases (1.4u - 5.6u,
    // measured); the bound is ~10u.
    const gpu = await testGpu();
    // The released keyframe layout and the interpolation model (f16 Conv3d in every Block, f16 skip_embeddings table).
    for (const name of ['unet_keyframe_blocks', 'unet_interpolation']) {
      const c = await loadCase(join(root, name));
      try {
        const dtype: WeightDType = 'f16';
        const got = (await runUNetCase(gpu, c, { dtype })).out.data;
        const ref = c.outputs.get('out')!.data;
        const err = maxAbsDiff(got, ref);
        expect(err, name).toBeLessThan(5e-3 * maxAbs(ref));
        // And f16 storage did change the result (the weights really were f16).
        expect(err, name).toBeGreaterThan(1e-6);
      } finally {
        await c.close();
      }
    }
  });

  it('frees everything a forward made but its output', async () => {
    const gpu = await testGpu();
    const c = await loadCase(keyframeDir);
    try {
      const unet = await loadUNet(gpu, config(c), c.weights);
      const before = gpu.pool.stats().liveBytes;
      await forwardCase(gpu, unet, c);
      expect(gpu.pool.stats().liveBytes).toBe(before);
      unet.dispose();
    } finally {
      await c.close();
    }
  });
});

describe('U-Net configs', () => {
  it('counts the real presets from declarations alone', () => {
    // Upstream's counts (test/reference/README.md, make_unet_cases.py --counts).
    const expected = {
      keyframe: [4_143_739_012, 1900],
      interpolation: [3_872_572_046, 1651],
      text_to_image: [3_038_562_820, 1068],
    } as const;
    for (const [name, [params, tensors]] of Object.entries(expected)) {
      if (!isUNetPreset(name)) throw new Error(name);
      const unet = new UNet(new WeightBuilder(), presetConfig(name));
      expect(unet.parameterCount(), name).toBe(params);
      expect(unet.params().length, name).toBe(tensors);
      expect(unet.params().every((p) => !p.loaded)).toBe(true);
    }
  });

  it('declares the key names upstream uses', () => {
    const keys = new Set(new UNet(new WeightBuilder(), presetConfig('keyframe')).params().map((p) => p.key));
    for (const k of [
      'to_time_embed.1.weight',
      'feature_pooling.attention.to_query.weight',
      'to_temporal_embed.3.bias',
      'down_samples.1.self_attention_block.attention.output_layer.weight',
      'down_samples.1.temporal_attention_block.in_norm.context_mlp.1.weight',
      'down_samples.0.resnet_attn_blocks.2.2.resnet_blocks.2.down_sample.weight',
      'down_samples.0.resnet_attn_blocks.2.2.shortcut_down_sample.weight',
      'up_samples.1.resnet_attn_blocks.0.0.resnet_blocks.1.up_sample.weight',
      'up_samples.1.resnet_attn_blocks.0.0.shortcut_up_sample.weight',
      'up_samples.3.resnet_attn_blocks.0.4.temporal_resnet_blocks.3.2.weight',
      'out_layer.0.weight',
      'out_layer.2.bias',
    ]) {
      expect(keys.has(k), k).toBe(true);
    }
    // Level 0 has no cross attention: index 1 stays empty.
    expect([...keys].some((k) => k.startsWith('down_samples.0.resnet_attn_blocks.0.1.'))).toBe(false);
  });

  it('takes upstream defaults and rejects bad configs with the setting named', () => {
    const c = parseUNetConfig({ model_channels: 64, time_embed_dim: 128 });
    expect(c.init_channels).toBe(64);
    expect(c.num_channels).toBe(3);
    expect(c.dim_mult).toEqual([1, 2, 4, 8]);
    expect(c.temporal_type).toBe('conv1d_attn1d_blocks');
    expect(parseUNetConfig({ ...UNET_PRESETS.interpolation, num_frames: 15 }).num_frames).toBeNull();
    expect(() => parseUNetConfig({ model_channels: 64 })).toThrow(/time_embed_dim is required/);
    expect(() => parseUNetConfig({ model_channels: 64, time_embed_dim: 128, dropout: 0.1 })).toThrow(/unknown key\(s\) dropout/);
    expect(() => parseUNetConfig({ model_channels: 48, time_embed_dim: 128 })).toThrow(/do not split into groups = 32/);
    expect(() => parseUNetConfig({ model_channels: 64, time_embed_dim: 128, num_blocks: [3, 3] })).toThrow(/num_blocks has 2 entries/);
    expect(() => parseUNetConfig({ model_channels: 64, time_embed_dim: 128, temporal_type: 'conv2d' })).toThrow(/temporal_type must be one of/);
  });
});
