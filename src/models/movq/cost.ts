// What an encode or decode costs, computed from the config alone: floating-
// point operations (multiply-add = 2) per op family, and the largest
// activation one frame produces, which must fit one storage binding
// (maxStorageBufferBindingSize; 128 MiB on lavapipe) because the ops bind
// each activation whole. Elementwise ops and norms are not counted as flops.
import { type MoVQConfig, levelChannels } from './config.ts';

export interface MoVQCost {
  /** Total flops of the call (all frames). */
  flops: number;
  /** Flops per op family: conv2d, conv3d, linear (the 1×1 q/k/v/proj_out), attention. */
  byFamily: Record<'conv2d' | 'conv3d' | 'linear' | 'attention', number>;
  /** Bytes of the largest f32 activation of one frame ([1, C, H, W]). */
  maxFrameBytes: number;
  /** Where that activation is, for error messages. */
  maxFrameWhere: string;
}

class Tally implements MoVQCost {
  flops = 0;
  byFamily = { conv2d: 0, conv3d: 0, linear: 0, attention: 0 };
  maxFrameBytes = 0;
  maxFrameWhere = '';
  constructor(readonly frames: number) {}

  add(family: keyof MoVQCost['byFamily'], perFrame: number): void {
    this.byFamily[family] += perFrame * this.frames;
    this.flops += perFrame * this.frames;
  }
  act(channels: number, h: number, w: number, where: string): void {
    const bytes = 4 * channels * h * w;
    if (bytes > this.maxFrameBytes) {
      this.maxFrameBytes = bytes;
      this.maxFrameWhere = `${where} [${channels}, ${h}, ${w}]`;
    }
  }
  conv(cin: number, cout: number, k: number, h: number, w: number, where: string, family: 'conv2d' | 'conv3d' = 'conv2d'): void {
    this.add(family, 2 * cin * cout * k * h * w);
    this.act(cout, h, w, where);
  }
}

interface Res {
  h: number;
  w: number;
}

function resnet(t: Tally, c: MoVQConfig, cin: number, cout: number, r: Res, where: string, decoder: boolean, temporal: boolean, zq: Res | null): void {
  const p = r.h * r.w;
  const k3d = decoder && c.build_3D_decoder;
  t.act(cin, r.h, r.w, `${where} input`);
  t.conv(cin, cout, k3d ? 27 : 9, r.h, r.w, `${where}.conv1`, k3d ? 'conv3d' : 'conv2d');
  t.conv(cout, cout, k3d ? 27 : 9, r.h, r.w, `${where}.conv2`, k3d ? 'conv3d' : 'conv2d');
  if (cin !== cout) t.add('conv2d', 2 * cin * cout * p);
  if (temporal) {
    const [kt, kh, kw] = c.temporal_kernel_size;
    t.add('conv3d', 2 * 2 * cout * cout * kt * kh * kw * p);
  }
  if (zq) spatialNormConvs(t, c, [cin, cout], zq);
}

/** Each decoder SpatialNorm runs conv_y and conv_b (1×1, z → C) at the latent's size. */
function spatialNormConvs(t: Tally, c: MoVQConfig, channels: number[], zq: Res): void {
  for (const ch of channels) t.add('conv2d', 2 * 2 * c.z_channels * ch * zq.h * zq.w);
}

/** TemporalResnetBlock: two Conv3d (3,1,1) C→C and two SpatialNorms. */
function temporalResnet(t: Tally, c: MoVQConfig, ch: number, r: Res, zq: Res, where: string): void {
  t.add('conv3d', 2 * 2 * ch * ch * 3 * r.h * r.w);
  t.act(ch, r.h, r.w, where);
  spatialNormConvs(t, c, [ch, ch], zq);
}

function attn(t: Tally, channels: number, r: Res, where: string): void {
  const p = r.h * r.w;
  t.add('linear', 4 * 2 * p * channels * channels);
  t.add('attention', 2 * 2 * p * p * channels);
  t.act(channels, r.h, r.w, where);
}

function temporalAttn(t: Tally, channels: number, r: Res, where: string): void {
  const p = r.h * r.w;
  t.add('linear', 4 * 2 * p * channels * channels);
  t.add('attention', 2 * 2 * p * t.frames * channels);
  t.act(channels, r.h, r.w, where);
}

/** decode(quant [frames, z, h, w]). */
export function decodeCost(c: MoVQConfig, frames: number, h: number, w: number): MoVQCost {
  const t = new Tally(frames);
  const levels = c.ch_mult.length;
  const zq: Res = { h, w };
  let r: Res = { h, w };
  let curRes = Math.floor(c.resolution / 2 ** (levels - 1));
  let blockIn = levelChannels(c, levels - 1);
  t.conv(c.z_channels, c.z_channels, 1, h, w, 'post_quant_conv');
  t.conv(c.z_channels, blockIn, 9, h, w, 'decoder.conv_in');
  const midT = c.temporal && c.temporal_mid_blocks;
  for (const b of ['block_1', 'block_2']) {
    resnet(t, c, blockIn, blockIn, r, `decoder.mid.${b}`, true, midT, zq);
    if (c.temporal_blocks) temporalResnet(t, c, blockIn, r, zq, `decoder.mid.temporal_${b}`);
    if (b === 'block_1') {
      attn(t, blockIn, r, 'decoder.mid.attn_1');
      spatialNormConvs(t, c, [blockIn], zq);
      if (c.temporal_attention_block) temporalAttn(t, blockIn, r, 'decoder.mid.temporal_attn_1');
    }
  }
  for (let level = levels - 1; level >= 0; level--) {
    const out = levelChannels(c, level);
    for (let i = 0; i <= c.num_res_blocks; i++) {
      const where = `decoder.up.${level}.block.${i}`;
      resnet(t, c, blockIn, out, r, where, true, c.temporal, zq);
      blockIn = out;
      if (c.temporal_blocks) temporalResnet(t, c, out, r, zq, `decoder.up.${level}.temporal_block.${i}`);
      if (c.attn_resolutions.includes(curRes)) {
        attn(t, out, r, `decoder.up.${level}.attn.${i}`);
        spatialNormConvs(t, c, [out], zq);
        if (c.temporal_attention_block) temporalAttn(t, out, r, `decoder.up.${level}.temporal_attn.${i}`);
      }
    }
    if (level !== 0) {
      r = { h: 2 * r.h, w: 2 * r.w };
      t.act(blockIn, r.h, r.w, `decoder.up.${level}.upsample`);
      if (c.resamp_with_conv) t.conv(blockIn, blockIn, 9, r.h, r.w, `decoder.up.${level}.upsample.conv`);
      curRes *= 2;
    }
  }
  spatialNormConvs(t, c, [blockIn], zq);
  t.conv(blockIn, c.out_ch, 9, r.h, r.w, 'decoder.conv_out');
  return t;
}

/** encode(x [frames, in_channels, h, w]). */
export function encodeCost(c: MoVQConfig, frames: number, h: number, w: number): MoVQCost {
  const t = new Tally(frames);
  const levels = c.ch_mult.length;
  let r: Res = { h, w };
  let curRes = c.resolution;
  let blockIn = c.ch;
  t.act(c.in_channels, h, w, 'input');
  t.conv(c.in_channels, c.ch, 9, h, w, 'encoder.conv_in');
  for (let level = 0; level < levels; level++) {
    const out = levelChannels(c, level);
    for (let i = 0; i < c.num_res_blocks; i++) {
      resnet(t, c, blockIn, out, r, `encoder.down.${level}.block.${i}`, false, false, null);
      blockIn = out;
      if (c.attn_resolutions.includes(curRes)) attn(t, out, r, `encoder.down.${level}.attn.${i}`);
    }
    if (level !== levels - 1) {
      // pad right/bottom by 1, 3×3 stride 2: floor((n − 2) / 2) + 1; avg pool: floor(n / 2)
      r = c.resamp_with_conv ? { h: Math.floor((r.h - 2) / 2) + 1, w: Math.floor((r.w - 2) / 2) + 1 } : { h: Math.floor(r.h / 2), w: Math.floor(r.w / 2) };
      if (c.resamp_with_conv) t.conv(blockIn, blockIn, 9, r.h, r.w, `encoder.down.${level}.downsample.conv`);
      curRes = Math.floor(curRes / 2);
    }
  }
  resnet(t, c, blockIn, blockIn, r, 'encoder.mid.block_1', false, false, null);
  attn(t, blockIn, r, 'encoder.mid.attn_1');
  resnet(t, c, blockIn, blockIn, r, 'encoder.mid.block_2', false, false, null);
  const zOut = c.double_z ? 2 * c.z_channels : c.z_channels;
  t.conv(blockIn, zOut, 9, r.h, r.w, 'encoder.conv_out');
  t.conv(zOut, c.z_channels, 1, r.h, r.w, 'quant_conv');
  return t;
}

/** One decoder level's activations, for banding (see bands.ts). */
export interface LevelBands {
  /** Level index (0 = highest resolution) and its size. */
  level: number;
  height: number;
  width: number;
  /** Bytes of one row of the level's widest activation, all frames (channels rounded up to 4: the conv's channels-last copy). */
  rowBytes: number;
  /**
   * Rows past a band's edge that its largest window holds on each side: a
   * conv's halo, plus one where the upsample into the level rounds its
   * window out to whole input rows.
   */
  halo: number;
  /** Attention (or the mid block, which has it) runs here: never banded. */
  whole: boolean;
  where: string;
}

/** The decoder levels of decode(quant [frames, z, h, w]), lowest resolution first (the order they run in). */
export function decoderLevels(c: MoVQConfig, frames: number, h: number, w: number): LevelBands[] {
  const levels = c.ch_mult.length;
  // The 3×3 convs (and 3×3×3, build_3D_decoder) read one row on each side; the temporal projection its padding.
  const convHalo = Math.max(1, c.temporal ? c.temporal_conv_padding[1] : 0);
  const lowest = Math.floor(c.resolution / 2 ** (levels - 1));
  const out: LevelBands[] = [];
  for (let i = levels - 1; i >= 0; i--) {
    const scale = 2 ** (levels - 1 - i);
    // The level's blocks' outputs, and its input: the upsample output of the level below (or the mid block's).
    const channels = Math.max(levelChannels(c, i), levelChannels(c, Math.min(i + 1, levels - 1)), i === 0 ? c.out_ch : 0);
    const width = w * scale;
    out.push({
      level: i,
      height: h * scale,
      width,
      rowBytes: 4 * frames * 4 * Math.ceil(channels / 4) * width,
      halo: convHalo + (i < levels - 1 ? 1 : 0),
      whole: i === levels - 1 || c.attn_resolutions.includes(lowest * scale),
      where: `decoder.up.${i} [${frames > 1 ? `${frames}×` : ''}${channels}, ${h * scale}, ${width}]`,
    });
  }
  return out;
}

/**
 * The smallest storage binding a decode runs in: the levels with attention
 * whole, the others as bands of one row plus their halo.
 */
export function decodeBindingNeed(c: MoVQConfig, frames: number, h: number, w: number): { bytes: number; where: string } {
  let need = { bytes: 0, where: '' };
  for (const l of decoderLevels(c, frames, h, w)) {
    const bytes = l.whole ? l.height * l.rowBytes : Math.min(l.height, 1 + 2 * l.halo) * l.rowBytes;
    if (bytes > need.bytes) need = { bytes, where: `${l.where} f32 activation, ${l.whole ? 'whole for its attention' : `in bands of one row and ${l.halo} halo rows each side`}` };
  }
  return need;
}
