// The MoVQ building blocks (upstream `movq.py`), holding their weights by
// upstream key name. Activations are [N, C, H, W]; in the temporal decoder N
// is one video's T frames (frames of the video contiguous) and `frames` = T.
//
// Each forward runs inside tidy() and disposes its intermediates as soon as
// the next one exists (`next`), so a block holds at most its input, two
// activations and its output at once: at 256×256 each is up to 128 MiB.
import { ShapeError } from '../../errors.ts';
import { attention, temporalAttention } from '../../ops/attention.ts';
import { add, affine, lerp } from '../../ops/elementwise.ts';
import { concat, mean, permute, resizeNearest, slice, softmax, upsampleNearest2x } from '../../ops/layout.ts';
import { matmul } from '../../ops/matmul.ts';
import { groupNorm, groupNormBandStats, spatialNorm } from '../../ops/norm.ts';
import { Conv2d, Conv3d, GroupNorm, PointwiseConv } from '../../nn/layers.ts';
import type { Param, WeightBuilder } from '../../nn/weights.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { type Bands, bandRows, mapBands, nextBands, remapBands, zipBands } from './bands.ts';
import { MOVQ_EPS, MOVQ_GROUPS, type Triple } from './config.ts';

/** Replaces t by f(t) and disposes t: keeps one activation alive instead of two. */
export function next(t: Tensor, f: (t: Tensor) => Tensor): Tensor {
  const r = f(t);
  if (r !== t) t.dispose();
  return r;
}

/**
 * What every decoder norm is conditioned on: `zq` = the un-post-quant latent
 * [N, z, h, w] (encoder: null), and the video length (temporal decoder: T =
 * the whole batch; image decoder: null, frames independent).
 */
export interface DecodeContext {
  zq: Tensor | null;
  frames: number | null;
}

/**
 * SpatialNorm(C, zq_ch): `norm_layer` = GroupNorm(32, C, eps 1e-6). With zq:
 * norm(x)·conv_y(zq') + conv_b(zq'), zq' = zq resized to x's H×W (nearest).
 * Without add_conv the 1×1 convs commute with the nearest resize, so they run
 * at zq's resolution and the norm kernel reads them upsampled (no full-size
 * copy of zq). Encoder norms (zqChannels null) have no conv_y / conv_b keys.
 */
export class SpatialNorm {
  readonly norm_layer: GroupNorm;
  readonly conv: Conv2d | null;
  readonly conv_y: Conv2d | null;
  readonly conv_b: Conv2d | null;
  constructor(
    w: WeightBuilder,
    readonly options: { channels: number; zqChannels: number | null; addConv: boolean },
  ) {
    const { channels, zqChannels, addConv } = options;
    this.norm_layer = new GroupNorm(w.pp('norm_layer'), { groups: MOVQ_GROUPS, channels, eps: MOVQ_EPS });
    const zqConv = (name: string, out: number, kernel: number) =>
      new Conv2d(w.pp(name), { inChannels: zqChannels!, outChannels: out, kernel, padding: (kernel - 1) / 2 });
    this.conv = zqChannels !== null && addConv ? zqConv('conv', zqChannels, 3) : null;
    this.conv_y = zqChannels !== null ? zqConv('conv_y', channels, 1) : null;
    this.conv_b = zqChannels !== null ? zqConv('conv_b', channels, 1) : null;
  }

  /** The norm; `zq` null = the plain GroupNorm. SiLU fused when asked. */
  forward(x: Tensor, zq: Tensor | null, silu = false): Tensor {
    if (zq === null) return this.norm_layer.forward(x, { silu });
    if (!this.conv_y || !this.conv_b) throw new ShapeError('SpatialNorm', 'this norm was built without zq (encoder norm) but was given one');
    return tidy(() => {
      const [height, width] = x.shape.slice(2);
      const z = this.conv ? this.conv.forward(resizeNearest(zq, height, width)) : zq;
      return spatialNorm(x, this.conv_y!.forward(z), this.conv_b!.forward(z), {
        groups: MOVQ_GROUPS,
        eps: MOVQ_EPS,
        weight: this.norm_layer.weight!.t,
        bias: this.norm_layer.bias!.t,
        silu,
      });
    });
  }

  /** The norm of an image held as bands (bands.ts): statistics of the whole image, then each band normalised with them. */
  forwardBands(x: Bands, zq: Tensor | null, silu = false): Bands {
    return tidy(() => {
      const norm = {
        groups: MOVQ_GROUPS,
        eps: MOVQ_EPS,
        weight: this.norm_layer.weight!.t,
        bias: this.norm_layer.bias!.t,
        silu,
        bandStats: groupNormBandStats(x, MOVQ_GROUPS),
      };
      if (zq === null) return mapBands(x, (band) => groupNorm(band, norm));
      if (!this.conv_y || !this.conv_b) throw new ShapeError('SpatialNorm', 'this norm was built without zq (encoder norm) but was given one');
      const height = bandRows(x).reduce((a, b) => a + b, 0);
      if (!this.conv) {
        const y = this.conv_y.forward(zq);
        const b = this.conv_b.forward(zq);
        return mapBands(x, (band, firstRow) => spatialNorm(band, y, b, { ...norm, band: { firstRow, height } }));
      }
      // add_conv: the 3×3 conv of zq resized to the image (z channels: a
      // small tensor) runs whole; the 1×1 conv_y / conv_b on each band's rows.
      const z = this.conv.forward(resizeNearest(zq, height, x[0].shape[3]));
      return mapBands(x, (band, firstRow) => {
        const zb = slice(z, 2, firstRow, band.shape[2]);
        return spatialNorm(band, this.conv_y!.forward(zb), this.conv_b!.forward(zb), norm);
      });
    });
  }
}

/** The temporal options a decoder ResnetBlock is built with. */
export interface ResnetTemporalOptions {
  /** temporal_projection1/2 Conv3d C→C + temporal_merge1/2 (the `temporal` option). */
  projection: { kernel: Triple; padding: Triple } | null;
  /** build_3D_decoder: conv1 / conv2 are Conv3d 3×3×3 over the video. */
  conv3d: boolean;
  /** flicker_augmentation: only declares temporal_flicker_proj (decode never uses it). */
  flicker: boolean;
}

const NO_TEMPORAL: ResnetTemporalOptions = { projection: null, conv3d: false, flicker: false };

/** conv1/conv2: a 2-D 3×3 conv, or (build_3D_decoder) a Conv3d 3×3×3 padding 1. */
type ResnetConv = { kind: '2d'; conv: Conv2d } | { kind: '3d'; conv: Conv3d };

/** Rows a 'same' conv reads past each output row: its padding in H. */
export function rowHalo(conv: Conv2d | Conv3d): number {
  if (conv instanceof Conv3d) return conv.options.padding[1];
  const p = conv.options.padding ?? 0;
  return typeof p === 'number' ? p : p[0];
}

function resnetConv(w: WeightBuilder, inChannels: number, outChannels: number, use3d: boolean): ResnetConv {
  return use3d
    ? { kind: '3d', conv: new Conv3d(w, { inChannels, outChannels, kernel: [3, 3, 3], padding: [1, 1, 1] }) }
    : { kind: '2d', conv: new Conv2d(w, { inChannels, outChannels, kernel: 3, padding: 1 }) };
}

/**
 * ResnetBlock: norm1 → SiLU → conv1 [→ temporal mix 1] → norm2 → SiLU → conv2
 * [→ temporal mix 2]; x (through nin_shortcut 1×1 when channels change) + h.
 * Temporal mix (upstream MOVQDecoder `temporal`): h = (1 − m)·h + m·Conv3d(h)
 * over the T frames. No temb_proj (temb_channels is 0 upstream).
 */
export class ResnetBlock {
  readonly norm1: SpatialNorm;
  readonly conv1: ResnetConv;
  readonly norm2: SpatialNorm;
  readonly conv2: ResnetConv;
  readonly nin_shortcut: Conv2d | null;
  readonly temporal_merge1: Param | null = null;
  readonly temporal_projection1: Conv3d | null = null;
  readonly temporal_merge2: Param | null = null;
  readonly temporal_projection2: Conv3d | null = null;
  constructor(
    w: WeightBuilder,
    readonly options: { inChannels: number; outChannels: number; zqChannels: number | null; addConv: boolean; temporal?: ResnetTemporalOptions },
  ) {
    const { inChannels, outChannels, zqChannels, addConv } = options;
    const t = options.temporal ?? NO_TEMPORAL;
    this.norm1 = new SpatialNorm(w.pp('norm1'), { channels: inChannels, zqChannels, addConv });
    this.conv1 = resnetConv(w.pp('conv1'), inChannels, outChannels, t.conv3d);
    this.norm2 = new SpatialNorm(w.pp('norm2'), { channels: outChannels, zqChannels, addConv });
    this.conv2 = resnetConv(w.pp('conv2'), outChannels, outChannels, t.conv3d);
    this.nin_shortcut = inChannels !== outChannels ? new Conv2d(w.pp('nin_shortcut'), { inChannels, outChannels, kernel: 1 }) : null;
    if (t.projection) {
      const proj = { inChannels: outChannels, outChannels, kernel: t.projection.kernel, padding: t.projection.padding };
      this.temporal_merge1 = w.param('temporal_merge1', [1]);
      this.temporal_projection1 = new Conv3d(w.pp('temporal_projection1'), proj);
      this.temporal_merge2 = w.param('temporal_merge2', [1]);
      this.temporal_projection2 = new Conv3d(w.pp('temporal_projection2'), proj);
      if (t.flicker) {
        // Upstream adds this projection of an augmentation embedding to the
        // Conv3d's input during training; a decode call never has one. Declared
        // so that checkpoints trained with it load strictly.
        w.pp('temporal_flicker_proj').param('weight', [outChannels, 1]);
        w.pp('temporal_flicker_proj').param('bias', [outChannels]);
      }
    }
  }

  private conv(c: ResnetConv, h: Tensor, frames: number | null): Tensor {
    if (c.kind === '2d') return c.conv.forward(h);
    if (frames === null) throw new ShapeError('ResnetBlock', 'a build_3D_decoder block needs the video length');
    // QUIRK 3 (build_3D_decoder, the spec's PROPOSED definition; upstream's
    // option does not run): conv1/conv2 are one Conv3d 3×3×3, padding 1, over
    // the whole (1, C, T, H, W) video. The norms stay per frame.
    return c.conv.forward(h, frames);
  }

  private mix(h: Tensor, proj: Conv3d | null, merge: Param | null, frames: number | null): Tensor {
    if (!proj || !merge || !frames) return h;
    return tidy(() => lerp(h, proj.forward(h, frames), merge.t));
  }

  private mixBands(h: Bands, proj: Conv3d | null, merge: Param | null, frames: number | null): Bands {
    if (!proj || !merge || !frames) return h;
    return tidy(() => {
      const p = remapBands(h, bandRows(h), 1, rowHalo(proj), (w) => proj.forward(w, frames));
      return zipBands(h, p, (a, b) => lerp(a, b, merge.t));
    });
  }

  /** forward on an image held as bands (bands.ts). */
  forwardBands(x: Bands, ctx: DecodeContext): Bands {
    // The convs' inputs are the norms' outputs, read by nothing else.
    const conv = (c: ResnetConv) => (h: Bands) => remapBands(h, bandRows(h), 1, rowHalo(c.conv), (w) => this.conv(c, w, ctx.frames), { freeInput: true });
    return tidy(() => {
      let h = this.norm1.forwardBands(x, ctx.zq, true);
      h = nextBands(h, conv(this.conv1));
      h = nextBands(h, (h) => this.mixBands(h, this.temporal_projection1, this.temporal_merge1, ctx.frames));
      h = nextBands(h, (h) => this.norm2.forwardBands(h, ctx.zq, true));
      h = nextBands(h, conv(this.conv2));
      h = nextBands(h, (h) => this.mixBands(h, this.temporal_projection2, this.temporal_merge2, ctx.frames));
      const shortcut = this.nin_shortcut;
      return nextBands(h, (h) => zipBands(x, h, (xb, hb) => add(shortcut ? shortcut.forward(xb) : xb, hb)));
    });
  }

  forward(x: Tensor, ctx: DecodeContext): Tensor {
    return tidy(() => {
      let h = this.norm1.forward(x, ctx.zq, true);
      h = next(h, (h) => this.conv(this.conv1, h, ctx.frames));
      h = next(h, (h) => this.mix(h, this.temporal_projection1, this.temporal_merge1, ctx.frames));
      h = next(h, (h) => this.norm2.forward(h, ctx.zq, true));
      h = next(h, (h) => this.conv(this.conv2, h, ctx.frames)); // dropout: inference, none
      h = next(h, (h) => this.mix(h, this.temporal_projection2, this.temporal_merge2, ctx.frames));
      if (!this.nin_shortcut) return next(h, (h) => add(x, h));
      const s = this.nin_shortcut.forward(x);
      return next(h, (h) => next(s, (s) => add(s, h)));
    });
  }
}

/** The fused attention kernel's largest head_dim (src/ops/attention.ts). */
const FUSED_MAX_HEAD_DIM = 256;
/** Bytes of one block of attention scores in the matmul path. */
const SCORE_BLOCK_BYTES = 32 * 1024 * 1024;

/**
 * Single-head softmax(q·kᵀ·scale)·v over [batch, L, C]. MoVQ attends with ONE
 * head over all C channels (512 or 1024 in the real models), past the fused
 * kernel's head_dim limit; there it runs as two matmuls and a softmax, the
 * queries in blocks that keep each score block within `blockBytes`.
 */
export function singleHeadAttention(q: Tensor, k: Tensor, v: Tensor, scale: number, blockBytes = SCORE_BLOCK_BYTES): Tensor {
  const c = q.shape[2];
  if (c <= FUSED_MAX_HEAD_DIM && c % 4 === 0) return attention(q, k, v, { heads: 1, scale });
  return tidy(() => {
    const [batch, lq] = q.shape;
    const lk = k.shape[1];
    const rows = Math.max(1, Math.min(lq, Math.floor(blockBytes / (4 * batch * lk))));
    const block = (qb: Tensor) => tidy(() => matmul(softmax(affine(matmul(qb, k, { transposeB: true }), scale, 0), -1), v));
    if (rows >= lq) return block(q);
    const outs: Tensor[] = [];
    for (let s = 0; s < lq; s += rows) outs.push(block(slice(q, 1, s, Math.min(rows, lq - s))));
    return concat(outs, 1);
  });
}

/** The same across the T frames of every pixel, on [B·T, pixels, C]. */
export function singleHeadTemporalAttention(q: Tensor, k: Tensor, v: Tensor, frames: number): Tensor {
  const c = q.shape[2];
  if (c <= FUSED_MAX_HEAD_DIM && c % 4 === 0) return temporalAttention(q, k, v, { heads: 1, frames, scale: c ** -0.5 });
  return tidy(() => {
    const [n, pixels] = q.shape;
    const videos = n / frames;
    // [B·T, P, C] → [B·P, T, C]: each pixel's frames become one attention problem
    const byPixel = (x: Tensor) => permute(x.reshape([videos, frames, pixels, c]), [0, 2, 1, 3]).reshape([videos * pixels, frames, c]);
    const out = singleHeadAttention(byPixel(q), byPixel(k), byPixel(v), c ** -0.5);
    return permute(out.reshape([videos, pixels, frames, c]), [0, 2, 1, 3]).reshape([n, pixels, c]);
  });
}

/** q, k, v, proj_out: 1×1 convs C→C, applied as linears on token-major activations. */
class QkvProj {
  readonly q: PointwiseConv;
  readonly k: PointwiseConv;
  readonly v: PointwiseConv;
  readonly proj_out: PointwiseConv;
  constructor(w: WeightBuilder, readonly channels: number) {
    const o = { inChannels: channels, outChannels: channels };
    this.q = new PointwiseConv(w.pp('q'), o);
    this.k = new PointwiseConv(w.pp('k'), o);
    this.v = new PointwiseConv(w.pp('v'), o);
    this.proj_out = new PointwiseConv(w.pp('proj_out'), o);
  }

  /**
   * The shared shape of AttnBlock and TemporalAttnBlock: h [N, C, H, W] →
   * tokens [N, HW, C] → q, k, v → attend → proj_out → back to [N, C, H, W].
   */
  run(h: Tensor, attend: (q: Tensor, k: Tensor, v: Tensor) => Tensor): Tensor {
    return tidy(() => {
      const [n, c, height, width] = h.shape;
      const tokens = permute(h.reshape([n, c, height * width]), [0, 2, 1]);
      const a = attend(this.q.applyTokens(tokens), this.k.applyTokens(tokens), this.v.applyTokens(tokens));
      const o = next(a, (a) => this.proj_out.applyTokens(a));
      return next(o, (o) => permute(o, [0, 2, 1])).reshape([n, c, height, width]);
    });
  }
}

/** AttnBlock: single-head self-attention over each frame's pixels, scale C^−½; x + proj_out(attn). */
export class AttnBlock {
  readonly norm: SpatialNorm;
  readonly qkv: QkvProj;
  constructor(w: WeightBuilder, readonly options: { channels: number; zqChannels: number | null; addConv: boolean }) {
    this.norm = new SpatialNorm(w.pp('norm'), options);
    this.qkv = new QkvProj(w, options.channels);
  }

  /** zqFromFrame0: the temporal decoder's quirk 1 (see below). */
  forward(x: Tensor, zq: Tensor | null, zqFromFrame0 = false): Tensor {
    return tidy(() => {
      // QUIRK 1 (temporal decoder, upstream main movq.py; spec §5): upstream's
      // AttnBlock loops over frames and hands the WHOLE zq to SpatialNorm,
      // whose own per-sample loop takes entry 0 for the one frame it gets, so
      // every frame is normalised with frame 0's latent. One zq row broadcasts
      // to every frame in the norm kernel. The 1.0 image decoder has no such
      // loop: each frame uses its own zq.
      const z = zq !== null && zqFromFrame0 ? zq.narrow(0, 1) : zq;
      const h = this.norm.forward(x, z);
      const c = this.options.channels;
      const out = this.qkv.run(h, (q, k, v) => singleHeadAttention(q, k, v, c ** -0.5));
      return next(out, (o) => add(x, o));
    });
  }
}

/** TemporalAttnBlock: single-head attention across the T frames of each pixel, scale C^−½. */
export class TemporalAttnBlock {
  readonly norm: SpatialNorm;
  readonly qkv: QkvProj;
  constructor(w: WeightBuilder, readonly options: { channels: number; zqChannels: number | null; addConv: boolean }) {
    this.norm = new SpatialNorm(w.pp('norm'), options);
    this.qkv = new QkvProj(w, options.channels);
  }

  forward(x: Tensor, frames: number): Tensor {
    return tidy(() => {
      // QUIRK 2 (upstream main movq.py; spec §5): upstream calls this block
      // without zq, so its SpatialNorm is the plain GroupNorm; norm.conv_y /
      // norm.conv_b are in the checkpoint (declared above, they load) but unused.
      const h = this.norm.forward(x, null);
      const out = this.qkv.run(h, (q, k, v) => singleHeadTemporalAttention(q, k, v, frames));
      return next(out, (o) => add(x, o));
    });
  }
}

/**
 * TemporalResnetBlock (temporal_blocks): SpatialNorm → SiLU → Conv3d (3,1,1)
 * padding (1,0,0) → SpatialNorm → SiLU → Conv3d (3,1,1); x + h. The convs mix
 * each pixel's frames only.
 */
export class TemporalResnetBlock {
  readonly norm1: SpatialNorm;
  readonly conv1: Conv3d;
  readonly norm2: SpatialNorm;
  readonly conv2: Conv3d;
  constructor(w: WeightBuilder, readonly options: { channels: number; zqChannels: number | null; addConv: boolean }) {
    const { channels } = options;
    const conv = { inChannels: channels, outChannels: channels, kernel: [3, 1, 1] as const, padding: [1, 0, 0] as const };
    this.norm1 = new SpatialNorm(w.pp('norm1'), options);
    this.conv1 = new Conv3d(w.pp('conv1'), conv);
    this.norm2 = new SpatialNorm(w.pp('norm2'), options);
    this.conv2 = new Conv3d(w.pp('conv2'), conv);
  }

  forward(x: Tensor, zq: Tensor | null, frames: number): Tensor {
    return tidy(() => {
      let h = this.norm1.forward(x, zq, true);
      h = next(h, (h) => this.conv1.forward(h, frames));
      h = next(h, (h) => this.norm2.forward(h, zq, true));
      h = next(h, (h) => this.conv2.forward(h, frames));
      return next(h, (h) => add(x, h));
    });
  }

  /** forward on an image held as bands: its convs mix frames only, so each band is its own. */
  forwardBands(x: Bands, zq: Tensor | null, frames: number): Bands {
    return tidy(() => {
      let h = this.norm1.forwardBands(x, zq, true);
      h = nextBands(h, (h) => mapBands(h, (b) => this.conv1.forward(b, frames)));
      h = nextBands(h, (h) => this.norm2.forwardBands(h, zq, true));
      h = nextBands(h, (h) => mapBands(h, (b) => this.conv2.forward(b, frames)));
      return nextBands(h, (h) => zipBands(x, h, add));
    });
  }
}

/** Nearest 2× then (resamp_with_conv) a 3×3 conv. */
export class Upsample {
  readonly conv: Conv2d | null;
  constructor(w: WeightBuilder, readonly options: { channels: number; withConv: boolean }) {
    const c = options.channels;
    this.conv = options.withConv ? new Conv2d(w.pp('conv'), { inChannels: c, outChannels: c, kernel: 3, padding: 1 }) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const up = upsampleNearest2x(x);
      return this.conv ? next(up, (u) => this.conv!.forward(u)) : up;
    });
  }

  /**
   * Into bands of the upsampled image with rows `outRows`, each made from
   * the input rows under it (and the conv's halo): the whole upsampled
   * image, 4× the input, never exists at once.
   */
  forwardBands(x: Bands, outRows: readonly number[], options: { freeInput?: boolean } = {}): Bands {
    return remapBands(x, outRows, 2, this.conv ? rowHalo(this.conv) : 0, (w) => this.forward(w), options);
  }
}

/**
 * With conv: zero-pad right and bottom by one, then a 3×3 stride-2 conv
 * without padding (the pad is the conv's asymmetric padding, no copy).
 * Without: 2×2 average pooling (floor of odd sizes, as torch's avg_pool2d).
 */
export class Downsample {
  readonly conv: Conv2d | null;
  constructor(w: WeightBuilder, readonly options: { channels: number; withConv: boolean }) {
    const c = options.channels;
    this.conv = options.withConv ? new Conv2d(w.pp('conv'), { inChannels: c, outChannels: c, kernel: 3, stride: 2, padding: [0, 1, 0, 1] }) : null;
  }
  forward(x: Tensor): Tensor {
    if (this.conv) return this.conv.forward(x);
    return tidy(() => {
      const [n, c, h, w] = x.shape;
      const [ho, wo] = [Math.floor(h / 2), Math.floor(w / 2)];
      if (ho === 0 || wo === 0) throw new ShapeError('Downsample', `cannot average-pool ${h}×${w} by 2`);
      const rows = h % 2 ? slice(x, 2, 0, 2 * ho) : x;
      const t = w % 2 ? slice(rows, 3, 0, 2 * wo) : rows;
      // [n, c, ho, 2, wo, 2] → [n, c, ho, wo, 2, 2] → mean of the 4 window values
      const windows = permute(t.reshape([n, c, ho, 2, wo, 2]), [0, 1, 2, 4, 3, 5]);
      return mean(windows.reshape([n, c, ho, wo, 4]), 4);
    });
  }
}
