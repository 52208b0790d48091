// The U-Net's convolutional blocks (spec §4): ConditionalGroupNorm, Block and
// ResNetBlock, keyed as upstream's `model/nn.py` / `model/unet.py`.
import { ShapeError } from '../../errors.ts';
import { Conv2d, Conv3d, ConvTranspose2d, Linear, PointwiseConv } from '../../nn/layers.ts';
import type { Param, WeightBuilder } from '../../nn/weights.ts';
import { add, lerp } from '../../ops/elementwise.ts';
import { repeatRows } from '../../ops/layout.ts';
import { groupNorm } from '../../ops/norm.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { Conditioning } from './embeddings.ts';

/** Upstream's `up_resolution`: true = ConvTranspose2d before the projection, false = Conv2d k2 s2 after it, null = neither. */
export type UpResolution = boolean | null;

/** Disposes `old` and returns `next`: keeps only one intermediate of a chain alive. */
export function replace(old: Tensor, next: Tensor): Tensor {
  old.dispose();
  return next;
}

/**
 * Rows of a per-condition tensor [R, ...] expanded to x's N rows (row r
 * serving rows [r·N/R, (r+1)·N/R)); one row is left to broadcast.
 */
export function expandRows(op: string, t: Tensor, rows: number): Tensor {
  const r = t.shape[0];
  if (r === rows) return t;
  if (r === 0 || rows % r !== 0) throw new ShapeError(op, `${r} condition rows do not divide ${rows} rows of x`);
  return repeatRows(t, rows / r);
}

/**
 * GroupNorm(groups, C, affine=False, eps 1e-5) → x·(scale + 1) + shift, with
 * [scale, shift] = `context_mlp.1`(SiLU(cond)). Takes SiLU(cond) (see
 * Conditioning.timeSilu); scale/shift and the optional SiLU after the norm
 * are fused into the norm kernel.
 */
export class ConditionalGroupNorm {
  private readonly contextMlp: Linear;

  constructor(
    w: WeightBuilder,
    private readonly options: { groups: number; channels: number; condDim: number },
  ) {
    this.contextMlp = new Linear(w.pp('context_mlp').pp(1), { inFeatures: options.condDim, outFeatures: 2 * options.channels });
  }

  /** x [N, C, H, W]; condSilu [R, condDim] with N % R = 0. */
  forward(x: Tensor, condSilu: Tensor, silu = false): Tensor {
    return tidy(() => {
      // One row broadcasts in the kernel; other counts are expanded to N rows.
      let scaleShift = this.contextMlp.forward(condSilu);
      if (scaleShift.shape[0] !== 1) scaleShift = expandRows('ConditionalGroupNorm', scaleShift, x.shape[0]);
      return groupNorm(x, { groups: this.options.groups, eps: 1e-5, scaleShift, silu });
    });
  }
}

export interface BlockOptions {
  inChannels: number;
  outChannels: number;
  timeEmbedDim: number;
  kernel: 1 | 3;
  groups: number;
  upResolution: UpResolution;
  /**
   * `temporal_projection` Conv3d (3,1,1) over the groups/frames axis and its
   * `temporal_merge`: the interpolation model and the temporal-layers variant.
   */
  temporal: boolean;
}

/** group_norm → SiLU → [up_sample] → projection → [temporal conv, merged] → [down_sample]. */
export class Block {
  private readonly groupNorm: ConditionalGroupNorm;
  private readonly upSample: ConvTranspose2d | null;
  private readonly projection: Conv2d | PointwiseConv;
  private readonly downSample: Conv2d | null;
  private readonly temporalMerge: Param | null;
  private readonly temporalProjection: Conv3d | null;

  constructor(w: WeightBuilder, o: BlockOptions) {
    this.groupNorm = new ConditionalGroupNorm(w.pp('group_norm'), { groups: o.groups, channels: o.inChannels, condDim: o.timeEmbedDim });
    this.upSample = o.upResolution === true ? new ConvTranspose2d(w.pp('up_sample'), { inChannels: o.inChannels, outChannels: o.inChannels }) : null;
    this.projection =
      o.kernel === 1
        ? new PointwiseConv(w.pp('projection'), { inChannels: o.inChannels, outChannels: o.outChannels })
        : new Conv2d(w.pp('projection'), { inChannels: o.inChannels, outChannels: o.outChannels, kernel: 3, padding: 1 });
    this.downSample =
      o.upResolution === false ? new Conv2d(w.pp('down_sample'), { inChannels: o.outChannels, outChannels: o.outChannels, kernel: 2, stride: 2 }) : null;
    this.temporalMerge = o.temporal ? w.param('temporal_merge', [1]) : null;
    this.temporalProjection = o.temporal
      ? new Conv3d(w.pp('temporal_projection'), { inChannels: o.outChannels, outChannels: o.outChannels, kernel: [3, 1, 1], padding: [1, 0, 0] })
      : null;
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    return tidy(() => {
      let h = this.groupNorm.forward(x, cond.timeSilu, true);
      if (this.upSample) h = replace(h, this.upSample.forward(h));
      h = replace(h, this.projection.forward(h));
      // As upstream, the temporal conv runs only when the caller names the axis.
      if (this.temporalProjection && this.temporalMerge && cond.blockGroups !== null) {
        const y = this.temporalProjection.forward(h, cond.blockGroups);
        h = replace(h, lerp(h, y, this.temporalMerge.t)); // (1 − m)·h + m·y
        y.dispose();
      }
      if (this.downSample) h = replace(h, this.downSample.forward(h));
      return h;
    });
  }
}

export interface ResNetBlockOptions {
  inChannels: number;
  outChannels: number;
  timeEmbedDim: number;
  groups: number;
  compressionRatio: number;
  /** One per Block; null entries (or no list) for neither. */
  upResolutions?: readonly UpResolution[];
  temporal: boolean;
}

/**
 * Four Blocks `resnet_blocks.0..3` (in→h 1×1, h→h 3×3, h→h 3×3, h→out 1×1,
 * h = max(in, out) / compression) plus a shortcut: `shortcut_up_sample` if a
 * Block up-samples, `shortcut_projection` (1×1) if in ≠ out,
 * `shortcut_down_sample` if a Block down-samples.
 */
export class ResNetBlock {
  private readonly blocks: Block[];
  private readonly shortcutUpSample: ConvTranspose2d | null;
  private readonly shortcutProjection: PointwiseConv | null;
  private readonly shortcutDownSample: Conv2d | null;

  constructor(w: WeightBuilder, o: ResNetBlockOptions) {
    const hidden = Math.floor(Math.max(o.inChannels, o.outChannels) / o.compressionRatio);
    const ups = o.upResolutions ?? [null, null, null, null];
    const channels: [number, number][] = [
      [o.inChannels, hidden],
      [hidden, hidden],
      [hidden, hidden],
      [hidden, o.outChannels],
    ];
    const kernels = [1, 3, 3, 1] as const;
    const rb = w.pp('resnet_blocks');
    this.blocks = channels.map(
      ([a, b], i) =>
        new Block(rb.pp(i), {
          inChannels: a,
          outChannels: b,
          timeEmbedDim: o.timeEmbedDim,
          kernel: kernels[i],
          groups: o.groups,
          upResolution: ups[i] ?? null,
          temporal: o.temporal,
        }),
    );
    const c = { inChannels: o.inChannels, outChannels: o.outChannels };
    this.shortcutUpSample = ups.includes(true) ? new ConvTranspose2d(w.pp('shortcut_up_sample'), { inChannels: c.inChannels, outChannels: c.inChannels }) : null;
    this.shortcutProjection = c.inChannels !== c.outChannels ? new PointwiseConv(w.pp('shortcut_projection'), c) : null;
    this.shortcutDownSample = ups.includes(false)
      ? new Conv2d(w.pp('shortcut_down_sample'), { inChannels: c.outChannels, outChannels: c.outChannels, kernel: 2, stride: 2 })
      : null;
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    return tidy(() => {
      let out = x;
      for (const block of this.blocks) {
        const next = block.forward(out, cond);
        if (out !== x) out.dispose();
        out = next;
      }
      let shortcut = x;
      for (const layer of [this.shortcutUpSample, this.shortcutProjection, this.shortcutDownSample]) {
        if (!layer) continue;
        const next = layer.forward(shortcut);
        if (shortcut !== x) shortcut.dispose();
        shortcut = next;
      }
      return add(shortcut, out);
    });
  }
}
