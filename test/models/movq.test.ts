// MoVQ beyond the parity cases: config validation, loading (torch .pt equals
// safetensors, strict errors, f16 storage), chunked and batched decoding,
// the device-limit check, decoding levels past a binding as bands of rows
// (equal to the unbanded decode), no leaks, and the flicker of the chunk
// modes at chunk borders (printed, and 'overlap' must beat 'upstream' there).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceLimitError, FormatError, WeightError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import type { Checkpoint, TensorEntry } from '../../src/io/checkpoint.ts';
import { openCheckpointFile } from '../../src/io/open.ts';
import { openSafetensorsFile } from '../../src/io/safetensors.ts';
import { singleHeadAttention, singleHeadTemporalAttention } from '../../src/models/movq/blocks.ts';
import { overlapWindows, splitFrames, upstreamChunkFrames } from '../../src/models/movq/chunking.ts';
import { IMAGE_MOVQ, type MoVQConfig, VIDEO_MOVQ, parseMoVQConfig } from '../../src/models/movq/config.ts';
import { decodeBands } from '../../src/models/movq/bands.ts';
import { decodeBindingNeed, decodeCost } from '../../src/models/movq/cost.ts';
import { MoVQ } from '../../src/models/movq/movq.ts';
import { randomParamValues } from '../../src/nn/init.ts';
import type { WeightDType } from '../../src/nn/weights.ts';
import { formatParity, runParity } from '../../src/parity/run.ts';
import { slice } from '../../src/ops/layout.ts';
import { tidy } from '../../src/tensor/scope.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { fixturePath } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, randomArray, testGpu, withBindingLimit } from '../helpers.ts';

const caseDir = (name: string) => fixturePath(`parity/${name}`);
const TINY = {
  double_z: false,
  z_channels: 4,
  resolution: 16,
  in_channels: 3,
  out_ch: 3,
  ch: 32,
  ch_mult: [1, 2],
  num_res_blocks: 1,
  attn_resolutions: [8],
  dropout: 0.0,
};

async function caseConfig(name: string): Promise<MoVQConfig> {
  const fs = await import('node:fs/promises');
  return parseMoVQConfig(JSON.parse(await fs.readFile(join(caseDir(name), 'case.json'), 'utf8')).config);
}

async function loadModel(gpu: Gpu, name: string, dtype: WeightDType = 'f32', file = 'weights.safetensors'): Promise<MoVQ> {
  const model = new MoVQ(await caseConfig(name));
  const ckpt = await openCheckpointFile(join(caseDir(name), file));
  try {
    await model.load(gpu, ckpt, { dtype });
  } finally {
    await ckpt.close();
  }
  return model;
}

async function readOut(t: Tensor): Promise<Float32Array> {
  try {
    return (await t.read()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** A checkpoint with keys removed, renamed or added (for the strict-loading errors). */
function edited(base: Checkpoint, edit: { drop?: string[]; add?: Record<string, number[]>; reshape?: Record<string, number[]> }): Checkpoint {
  const extra = new Map<string, TensorEntry>();
  for (const [name, shape] of Object.entries(edit.add ?? {})) {
    const n = shape.reduce((a, b) => a * b, 1);
    extra.set(name, { name, dtype: 'F32', shape, byteLength: 4 * n, read: async () => new Uint8Array(4 * n) });
  }
  return {
    source: `${base.source} (edited)`,
    metadata: base.metadata,
    keys: () => [...base.keys().filter((k) => !edit.drop?.includes(k)), ...extra.keys()],
    get: (k) => {
      if (edit.drop?.includes(k)) return undefined;
      const e = extra.get(k) ?? base.get(k);
      const shape = edit.reshape?.[k];
      return e && shape ? { ...e, shape } : e;
    },
    close: () => base.close(),
  };
}

describe('MoVQ config', () => {
  it('fills upstream defaults and keeps the given keys', () => {
    const c = parseMoVQConfig({ ...TINY, embed_dim: 4, n_embed: 16384 });
    expect(c.ch_mult).toEqual([1, 2]);
    expect(c.resamp_with_conv).toBe(true);
    expect(c.temporal_kernel_size).toEqual([3, 3, 3]);
    expect(c.temporal_mid_blocks).toBe(true);
    const d = parseMoVQConfig({ ch: 32, num_res_blocks: 1, attn_resolutions: [], z_channels: 4, resolution: 16, in_channels: 3, out_ch: 3 });
    expect(d.ch_mult).toEqual([1, 2, 4, 8]);
    expect(d.double_z).toBe(true); // upstream Encoder's default
  });

  it('names every problem at once', () => {
    const bad = () => parseMoVQConfig({ ...TINY, ch: 48, z_channel: 4, temporal: 'yes', ch_mult: [1, 'x'], resolution: undefined });
    expect(bad).toThrow(FormatError);
    try {
      bad();
    } catch (e) {
      const m = (e as Error).message;
      for (const part of ['"z_channel"', '"resolution" is required', '"temporal" must be true or false', '"ch_mult" must be a list', 'not a multiple of 32']) expect(m).toContain(part);
    }
    expect(() => parseMoVQConfig({ ...TINY, temporal: true, temporal_kernel_size: [3, 3, 3], temporal_conv_padding: [1, 0, 1] })).toThrow(/kernel must be 2·padding \+ 1/);
    expect(() => parseMoVQConfig([1, 2])).toThrow(FormatError);
  });

  it('presets: the real image MoVQ and the released video MoVQ have the reference\'s tensor and parameter counts', () => {
    // kandinsky_movq.MoVQ with the same configs (its state_dict keys are upstream's):
    // image 430 tensors / 270,603,567 parameters, video 570 / 666,131,275.
    const image = new MoVQ(IMAGE_MOVQ);
    const video = new MoVQ(VIDEO_MOVQ);
    expect([image.params().length, image.weights.parameterCount()]).toEqual([430, 270_603_567]);
    expect([video.params().length, video.weights.parameterCount()]).toEqual([570, 666_131_275]);
    expect(video.params().some((p) => p.key === 'decoder.up.3.temporal_attn.0.norm.conv_y.weight')).toBe(true);
    expect(video.params().some((p) => p.key === 'decoder.mid.block_1.temporal_projection1.weight')).toBe(true);
    expect(image.params().some((p) => p.key.includes('quantize'))).toBe(false);
  });
});

describe('chunk plans', () => {
  it("upstream: torch.chunk(N // 4)", () => {
    const sizes = (n: number) => splitFrames(n, upstreamChunkFrames(n)).map((r) => r.length);
    expect(sizes(12)).toEqual([4, 4, 4]);
    expect(sizes(15)).toEqual([5, 5, 5]);
    expect(sizes(57)).toEqual([...new Array(11).fill(5), 2]);
    expect(sizes(225)).toEqual(new Array(45).fill(5));
    expect(sizes(3)).toEqual([3]); // upstream fails (chunk(0)); here one piece
  });

  it('overlap: windows cover every frame with weights summing to 1', () => {
    for (const [n, size, overlap] of [[20, 5, 2], [57, 5, 2], [7, 5, 1], [4, 5, 2], [9, 4, 0]]) {
      const ws = overlapWindows(n, size, overlap);
      const total = new Array<number>(n).fill(0);
      for (const w of ws) {
        expect(w.start).toBeGreaterThanOrEqual(0);
        expect(w.start + w.length).toBeLessThanOrEqual(n);
        w.weights.forEach((x, k) => (total[w.start + k] += x));
      }
      for (const t of total) expect(t).toBeCloseTo(1, 12);
    }
    expect(overlapWindows(20, 5, 2).map((w) => w.start)).toEqual([0, 3, 6, 9, 12, 15]);
  });
});

/** softmax(q·kᵀ·scale)·v per batch row, in f64 on the host. */
function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, batch: number, lq: number, lk: number, c: number, scale: number): Float32Array {
  const out = new Float32Array(batch * lq * c);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < lq; i++) {
      const s = new Float64Array(lk);
      for (let j = 0; j < lk; j++) {
        let d = 0;
        for (let x = 0; x < c; x++) d += q[(b * lq + i) * c + x] * k[(b * lk + j) * c + x];
        s[j] = d * scale;
      }
      const m = Math.max(...s);
      let z = 0;
      for (let j = 0; j < lk; j++) z += s[j] = Math.exp(s[j] - m);
      for (let x = 0; x < c; x++) {
        let a = 0;
        for (let j = 0; j < lk; j++) a += (s[j] / z) * v[(b * lk + j) * c + x];
        out[(b * lq + i) * c + x] = a;
      }
    }
  }
  return out;
}

describe('single-head attention past the fused kernel\'s head_dim (the real MoVQ attends over 512-1024 channels)', () => {
  // 272 channels > 256: the matmul + softmax path. Sums of 272 products: 1e-5 is ~100 f32 ulps of |out| ~ 1.
  it('spatial, whole and in query blocks', async () => {
    const gpu = await testGpu();
    const [batch, l, c] = [2, 24, 272];
    const [q, k, v] = [1, 2, 3].map((seed) => randomArray(batch * l * c, seed));
    const ref = attentionRef(q, k, v, batch, l, l, c, c ** -0.5);
    const [tq, tk, tv] = [q, k, v].map((d) => Tensor.from(gpu, d, [batch, l, c]));
    for (const blockBytes of [undefined, 4 * batch * l * 5]) {
      const out = await readOut(tidy(() => singleHeadAttention(tq, tk, tv, c ** -0.5, blockBytes)));
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    }
    for (const t of [tq, tk, tv]) t.dispose();
  });

  it('temporal: across the frames of each pixel', async () => {
    const gpu = await testGpu();
    const [videos, frames, pixels, c] = [2, 3, 5, 272];
    const n = videos * frames * pixels * c;
    const [q, k, v] = [4, 5, 6].map((seed) => randomArray(n, seed));
    // host layout [B·P, T, C] for the reference
    const byPixel = (x: Float32Array) => {
      const o = new Float32Array(n);
      for (let b = 0; b < videos; b++)
        for (let t = 0; t < frames; t++)
          for (let p = 0; p < pixels; p++) o.set(x.subarray(((b * frames + t) * pixels + p) * c, ((b * frames + t) * pixels + p + 1) * c), ((b * pixels + p) * frames + t) * c);
      return o;
    };
    const refByPixel = attentionRef(byPixel(q), byPixel(k), byPixel(v), videos * pixels, frames, frames, c, c ** -0.5);
    const [tq, tk, tv] = [q, k, v].map((d) => Tensor.from(gpu, d, [videos * frames, pixels, c]));
    const out = await readOut(tidy(() => singleHeadTemporalAttention(tq, tk, tv, frames)));
    let err = 0;
    for (let b = 0; b < videos; b++) for (let t = 0; t < frames; t++) for (let p = 0; p < pixels; p++) for (let x = 0; x < c; x++) {
      err = Math.max(err, Math.abs(out[((b * frames + t) * pixels + p) * c + x] - refByPixel[((b * pixels + p) * frames + t) * c + x]));
    }
    expect(err).toBeLessThan(1e-5);
    for (const t of [tq, tk, tv]) t.dispose();
  });
});

// The first decodes in a file compile every kernel variant they use (over a
// minute on a busy 2-core lavapipe); later ones take a second or two.
describe('MoVQ model', { timeout: 600_000 }, () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  it('loads movq_image_decode/checkpoint.pt (torch.save state_dict) exactly as weights.safetensors', async () => {
    const a = await loadModel(gpu, 'movq_image_decode', 'f32', 'checkpoint.pt');
    const b = await loadModel(gpu, 'movq_image_decode', 'f32', 'weights.safetensors');
    const pb = new Map(b.params().map((p) => [p.key, p]));
    for (const p of a.params()) expect(maxAbsDiff(await p.t.read(), await pb.get(p.key)!.t.read()), p.key).toBe(0);
    a.release();
    b.release();
  });

  it('loads strictly: missing, unexpected and mis-shaped keys are named together', async () => {
    const model = new MoVQ(await caseConfig('movq_image_decode'));
    const base = await openSafetensorsFile(join(caseDir('movq_image_decode'), 'weights.safetensors'));
    const ckpt = edited(base, {
      drop: ['decoder.mid.attn_1.norm.conv_y.weight'],
      add: { 'quantize.embedding.weight': [16, 4] },
      reshape: { 'decoder.conv_in.weight': [64, 4, 1, 1] },
    });
    const err = await model.load(gpu, ckpt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightError);
    const m = (err as Error).message;
    expect(m).toContain('missing keys (1):\n  decoder.mid.attn_1.norm.conv_y.weight');
    expect(m).toContain('unexpected keys (1):\n  quantize.embedding.weight');
    expect(m).toContain('decoder.conv_in.weight: checkpoint [64, 4, 1, 1], model [64, 4, 3, 3]');
    // A decoder-only model loads from the full checkpoint (the encoder keys are skipped).
    const dec = new MoVQ(await caseConfig('movq_image_decode'), { encoder: false });
    await dec.load(gpu, base);
    expect(dec.params().every((p) => p.loaded)).toBe(true);
    dec.release();
    model.release();
    await base.close();
  });

  it('f16 weight storage decodes within 1e-5 of f32 storage (the case weights are f16-exact)', async () => {
    // The case weights are stored F16, so f16 storage loses nothing: the two
    // runs differ only by how the kernels read the weight (unpack vs bitcast),
    // i.e. by f32 rounding of identical products: well under 1e-5 here.
    const q = await openSafetensorsFile(join(caseDir('movq_image_decode'), 'inputs.safetensors'));
    const e = q.get('quant')!;
    const quantData = new Float32Array((await e.read()).buffer.slice(0));
    await q.close();
    const outs: Float32Array[] = [];
    for (const dtype of ['f32', 'f16'] as const) {
      const model = await loadModel(gpu, 'movq_image_decode', dtype);
      const kernels = model.params().filter((p) => p.shape.length >= 2).length;
      expect(model.params().filter((p) => p.t.dtype === 'f16').length).toBe(dtype === 'f16' ? kernels : 0);
      const quant = Tensor.from(gpu, quantData, [...e.shape]);
      outs.push(await readOut(tidy(() => model.decode(quant))));
      quant.dispose();
      model.release();
    }
    const ref = await openSafetensorsFile(join(caseDir('movq_image_decode'), 'outputs.safetensors'));
    const refOut = new Float32Array((await ref.get('out')!.read()).buffer.slice(0));
    await ref.close();
    expect(maxAbsDiff(outs[1], outs[0])).toBeLessThanOrEqual(1e-5 * maxAbs(outs[0]));
    expect(maxAbsDiff(outs[1], refOut)).toBeLessThanOrEqual(1e-4 + 1e-3 * maxAbs(refOut));
  });

  it("decodeVideo 'upstream' equals decoding each chunk alone (temporal decoder)", async () => {
    const model = await loadModel(gpu, 'movq_temporal_layers');
    const n = 9; // 9 // 4 = 2 chunks of ceil(9 / 2) = 5: [0, 5) and [5, 9)
    const latents = Tensor.from(gpu, randomArray(n * 4 * 8 * 8, 11), [n, 4, 8, 8]);
    const got: { first: number; data: Float32Array; frames: number }[] = [];
    await model.decodeVideo(latents, { onFrames: async (f, first) => void got.push({ first, frames: f.shape[0], data: (await f.read()) as Float32Array }) });
    expect(got.map((g) => [g.first, g.frames])).toEqual([[0, 5], [5, 4]]);
    for (const g of got) {
      const alone = await readOut(tidy(() => model.decode(slice(latents, 0, g.first, g.frames))));
      expect(maxAbsDiff(g.data, alone)).toBe(0);
    }
    // and the chunks are not the whole-video decode (the temporal parts see the chunk only)
    const whole = await readOut(tidy(() => model.decode(latents)));
    expect(maxAbsDiff(got[1].data, whole.subarray(5 * 3 * 16 * 16))).toBeGreaterThan(1e-3);
    latents.dispose();
    model.release();
  });

  it('image decoder: N frames in chunks or batches equal decoding all at once', async () => {
    const model = await loadModel(gpu, 'movq_image_decode');
    const n = 5;
    const latents = Tensor.from(gpu, randomArray(n * 4 * 8 * 12, 5), [n, 4, 8, 12]);
    const all = await readOut(tidy(() => model.decode(latents)));
    const batched = await readOut(tidy(() => model.decode(latents, { batchFrames: 2 })));
    const streamed = new Float32Array(all.length);
    const frame = 3 * 16 * 24;
    await model.decodeVideo(latents, { chunkFrames: 2, onFrames: async (f, first) => streamed.set((await f.read()) as Float32Array, first * frame) });
    // Frames are independent; only the batch size of the dispatches differs.
    expect(maxAbsDiff(batched, all)).toBeLessThanOrEqual(1e-6 * maxAbs(all));
    expect(maxAbsDiff(streamed, all)).toBeLessThanOrEqual(1e-6 * maxAbs(all));
    latents.dispose();
    model.release();
  });

  it('forwards do not leak: the pool holds the same bytes before and after', async () => {
    const model = await loadModel(gpu, 'movq_temporal_layers');
    const x = Tensor.from(gpu, randomArray(4 * 4 * 8 * 8, 3), [4, 4, 8, 8]);
    const before = gpu.pool.stats().liveBytes;
    tidy(() => model.decode(x)).dispose();
    await model.decodeVideo(x, { chunkFrames: 3, mode: 'overlap', overlap: 1, onFrames: () => {} });
    expect(gpu.pool.stats().liveBytes).toBe(before);
    x.dispose();
    model.release();
  });

  it('levels past one storage binding are planned as bands of rows; a level with attention past it is refused up front', async () => {
    const lavapipe = 128 * 2 ** 20;
    // 512×512 output: level 1's upsample output is 512 × 512 × 512 × 4 B = 512 MiB.
    expect(decodeCost(IMAGE_MOVQ, 1, 64, 64).maxFrameBytes).toBe(512 * 2 ** 20);
    // Lowest resolution first: levels 3, 2 and 1 (exactly 128 MiB) whole, level 0 in 5 bands.
    expect(decodeBands(IMAGE_MOVQ, 1, 64, 64, lavapipe)).toEqual([[64], [128], [256], [103, 103, 102, 102, 102]]);
    // A chunk of 5 frames of the temporal decoder at 256×256: levels 1 and 0 banded.
    expect(decodeBands(VIDEO_MOVQ, 5, 32, 32, lavapipe).map((p) => p.length)).toEqual([1, 1, 2, 6]);
    // 2048×2048: level 3 has attention and holds [1024, 256, 256] = 256 MiB; refused before any weight is read.
    const image = new MoVQ(IMAGE_MOVQ, { encoder: false });
    const video = new MoVQ(VIDEO_MOVQ, { encoder: false });
    const huge = Tensor.empty(gpu, [1, 4, 256, 256]);
    await withBindingLimit(gpu, lavapipe, async () => {
      expect(() => image.decode(huge)).toThrow(DeviceLimitError);
      expect(() => image.decode(huge)).toThrow(/decoder\.up\.3 \[1024, 256, 256\]: the level has attention, which needs it whole \(256\.0 MiB\)/);
      expect(() => video.decode(huge)).toThrow(DeviceLimitError);
    });
    expect(decodeBindingNeed(IMAGE_MOVQ, 1, 256, 256)).toEqual({ bytes: 256 * 2 ** 20, where: 'decoder.up.3 [1024, 256, 256] f32 activation, whole for its attention' });
    // At 512×512 the binding a decode needs is level 3's, which has attention: [1024, 64, 64] = 16 MiB.
    expect(decodeBindingNeed(IMAGE_MOVQ, 1, 64, 64)).toEqual({ bytes: 16 * 2 ** 20, where: 'decoder.up.3 [1024, 64, 64] f32 activation, whole for its attention' });
    // Where the top level dominates: a band of one row and two halo rows each side, 5 rows of [32, 96] f32.
    expect(decodeBindingNeed(parseMoVQConfig({ ...TINY, ch_mult: [1, 1] }), 1, 5, 48)).toEqual({ bytes: 5 * 12 * 1024, where: 'decoder.up.0 [32, 10, 96] f32 activation, in bands of one row and 2 halo rows each side' });
    huge.dispose();
  });
});

/** A decoder-only MoVQ with deterministic random weights (nn/init.ts), none larger than 110 KiB here. */
function randomMoVQ(gpu: Gpu, config: MoVQConfig): MoVQ {
  const model = new MoVQ(config, { encoder: false });
  for (const p of model.params()) p.set(Tensor.from(gpu, randomParamValues(p, 5), p.shape, 'f32', { persistent: true }));
  return model;
}

// Banded decodes against the same decode unbanded. Only the norms compute
// differently (each band's moments merged with Chan's formula instead of one
// workgroup's partials: f32 rounding in another order, ~1e-7 relative); the
// convs compute every output pixel from the same inputs in the same order.
// Through the decoder's norms and convs that measured ≤ 4e-7 of max|out|
// (3 ulps at |out| ~ 2); a wrong halo row, band offset or statistic moves
// outputs by O(1) (a conv without its halo rows: 1.9 at max|out| 2.3).
const BANDED_RTOL = 3e-6;

describe('banded decode: levels past a binding as bands of rows equal the unbanded decode', { timeout: 600_000 }, () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });

  async function compare(model: MoVQ, latent: Tensor, limit: number, plan: number[][]): Promise<void> {
    const [n, , h, w] = latent.shape;
    // The image decoder decodes a banded frame alone; the temporal decoder the whole video in each band.
    const frames = model.isVideo ? n : 1;
    expect(decodeBands(model.config, frames, h, w, limit)).toEqual(plan);
    const whole = await readOut(tidy(() => model.decode(latent)));
    const before = gpu.pool.stats().liveBytes;
    const banded = await withBindingLimit(gpu, limit, async () => {
      expect(frames * decodeCost(model.config, 1, h, w).maxFrameBytes).toBeGreaterThan(limit);
      return readOut(tidy(() => model.decode(latent)));
    });
    expect(gpu.pool.stats().liveBytes).toBe(before);
    const err = maxAbsDiff(banded, whole);
    expect(err, `bands ${JSON.stringify(plan)}: max error ${err}, max |out| ${maxAbs(whole)}`).toBeLessThanOrEqual(BANDED_RTOL * maxAbs(whole));
  }

  // Two levels of 32 channels, attention at the lower; a latent 5 × 48 makes
  // level 0 [32, 10, 96]: 12 KiB a row, 120 KiB whole.
  const image = parseMoVQConfig({ ...TINY, ch_mult: [1, 1] });

  it('image decoder: one-row bands, and uneven bands', async () => {
    const model = randomMoVQ(gpu, image);
    const latent = Tensor.from(gpu, randomArray(2 * 4 * 5 * 48, 31), [2, 4, 5, 48]);
    // 64 KiB: 5 rows, a band of one row and two halo rows each side.
    await compare(model, latent, 64 * 1024, [[5], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]);
    await compare(model, latent, 96 * 1024, [[5], [4, 3, 3]]);
    latent.dispose();
    model.release();
  });

  it("image decoder with add_conv (SpatialNorm's 3×3 conv of zq at the image's size)", async () => {
    const model = randomMoVQ(gpu, { ...image, add_conv: true });
    const latent = Tensor.from(gpu, randomArray(4 * 5 * 48, 32), [1, 4, 5, 48]);
    await compare(model, latent, 96 * 1024, [[5], [4, 3, 3]]);
    latent.dispose();
    model.release();
  });

  it('temporal decoder (3×3×3 temporal projections, temporal blocks and attention): the whole video in every band', async () => {
    const video = parseMoVQConfig({ ...TINY, ch_mult: [1, 1], temporal: true, temporal_blocks: true, temporal_attention_block: true });
    const model = randomMoVQ(gpu, video);
    // 3 frames: level 0 [3 × 32, 10, 64] is 24 KiB a row.
    const latent = Tensor.from(gpu, randomArray(3 * 4 * 5 * 32, 33), [3, 4, 5, 32]);
    await compare(model, latent, 5 * 24 * 1024, [[5], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]);
    await compare(model, latent, 8 * 24 * 1024, [[5], [4, 3, 3]]);
    latent.dispose();
    model.release();
  });

  it('build_3D_decoder (conv1/conv2 are Conv3d 3×3×3 over the video)', async () => {
    const model = randomMoVQ(gpu, parseMoVQConfig({ ...TINY, ch_mult: [1, 1], build_3D_decoder: true }));
    const latent = Tensor.from(gpu, randomArray(3 * 4 * 5 * 32, 34), [3, 4, 5, 32]);
    await compare(model, latent, 6 * 24 * 1024, [[5], [2, 2, 2, 2, 2]]);
    latent.dispose();
    model.release();
  });

  it('the movq_temporal_blocks_attention parity case passes at its tolerance with level 0 in 6 bands', async () => {
    const limit = 150 * 1024; // its largest weight, a 64-channel 3×3 kernel, is 144 KiB
    expect(decodeBands(await caseConfig('movq_temporal_blocks_attention'), 4, 8, 10, limit)).toEqual([[8], [3, 3, 3, 3, 2, 2]]);
    const r = await withBindingLimit(gpu, limit, () => runParity(async () => gpu, caseDir('movq_temporal_blocks_attention')));
    expect(r.status, formatParity(r)).toBe('pass');
  });
});

describe('chunk borders: flicker of upstream vs overlap chunking (tiny temporal decoder)', { timeout: 600_000 }, () => {
  let gpu: Gpu;
  let model: MoVQ;
  const n = 20;
  const frame = 3 * 16 * 16;
  let latents: Tensor;
  beforeAll(async () => {
    gpu = await testGpu();
    model = await loadModel(gpu, 'movq_temporal_layers');
    // A slowly moving latent video: z_t = a·cos(ωt) + b·sin(ωt), so a good
    // decode changes little from frame to frame and chunk artefacts stand out.
    const a = randomArray(4 * 64, 21);
    const b = randomArray(4 * 64, 22);
    const data = new Float32Array(n * 4 * 64);
    for (let t = 0; t < n; t++) for (let i = 0; i < 256; i++) data[t * 256 + i] = 1.5 * (a[i] * Math.cos(0.15 * t) + b[i] * Math.sin(0.15 * t));
    latents = Tensor.from(gpu, data, [n, 4, 8, 8]);
  });
  afterAll(() => {
    latents?.dispose();
    model?.release();
  });

  async function decodeAll(mode: 'upstream' | 'overlap'): Promise<Float32Array> {
    const out = new Float32Array(n * frame);
    await model.decodeVideo(latents, { chunkFrames: 5, mode, onFrames: async (f, first) => out.set((await f.read()) as Float32Array, first * frame) });
    return out;
  }

  const step = (v: Float32Array, t: number) => {
    let s = 0;
    for (let i = 0; i < frame; i++) s += Math.abs(v[(t + 1) * frame + i] - v[t * frame + i]);
    return s / frame;
  };
  const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  it("'overlap' smooths the chunk borders that 'upstream' chunking leaves", async () => {
    const whole = await readOut(tidy(() => model.decode(latents)));
    // A step t → t+1 is a border when the set of chunks/windows decoding the two frames differs.
    const covering = (ranges: { start: number; length: number }[], t: number) => ranges.filter((r) => t >= r.start && t < r.start + r.length).map((r) => r.start).join();
    const bordersOf = (ranges: { start: number; length: number }[]) => Array.from({ length: n - 1 }, (_, t) => t).filter((t) => covering(ranges, t) !== covering(ranges, t + 1));
    const modes = [
      { name: 'whole video', v: whole, borders: bordersOf(splitFrames(n, 5)) },
      { name: 'upstream', v: await decodeAll('upstream'), borders: bordersOf(splitFrames(n, 5)) },
      { name: 'overlap', v: await decodeAll('overlap'), borders: bordersOf(overlapWindows(n, 5, 2)) },
    ];
    const rows: Record<string, { border: number; inside: number; maxStep: number; rough: number; vsWhole: number }> = {};
    for (const { name, v, borders } of modes) {
      const steps = Array.from({ length: n - 1 }, (_, t) => step(v, t));
      let dev = 0;
      for (let i = 0; i < v.length; i++) dev += Math.abs(v[i] - whole[i]);
      // temporal roughness: mean |f[t+1] − 2 f[t] + f[t−1]| (a jump shows up however the chunks lie)
      let rough = 0;
      for (let t = 1; t < n - 1; t++) for (let i = 0; i < frame; i++) rough += Math.abs(v[(t + 1) * frame + i] - 2 * v[t * frame + i] + v[(t - 1) * frame + i]);
      const inside = steps.filter((_, t) => !borders.includes(t));
      rows[name] = {
        border: meanOf(borders.map((t) => steps[t])),
        inside: inside.length ? meanOf(inside) : NaN,
        maxStep: Math.max(...steps),
        rough: rough / ((n - 2) * frame),
        vsWhole: dev / v.length,
      };
    }
    const fmt = (x: number) => x.toFixed(4);
    process.stdout.write(
      `chunk-border flicker, tiny temporal decoder (movq_temporal_layers weights), 20 smooth frames, chunks of 5 (overlap 2):\n${Object.entries(rows)
        .map(([k, r]) => `  ${k.padEnd(12)} step at borders ${fmt(r.border)}  elsewhere ${fmt(r.inside)}  max step ${fmt(r.maxStep)}  roughness ${fmt(r.rough)}  |out − whole| ${fmt(r.vsWhole)}`)
        .join('\n')}\n`,
    );
    expect(rows.overlap.maxStep).toBeLessThan(rows.upstream.maxStep);
    expect(rows.overlap.rough).toBeLessThan(rows.upstream.rough);
    expect(rows.upstream.border / rows.upstream.inside).toBeGreaterThan(1);
});
});
