// The U-Net's attentions (spec §3-4, §6): Attention, TemporalAttention,
// AttentionBlock, TemporalAttentionBlock and AttentionPolling
// (`feature_pooling`). Activations stay (N, C, H, W); attention works on
// token-major (N, H·W, C). The projections read the normed (N, C, H, W) input
// transposed inside the GEMM, so the only layout copy per attention is the
// output's way back to (N, C, H, W) before its residual.
import { ShapeError } from '../../errors.ts';
import { Linear, PointwiseConv } from '../../nn/layers.ts';
import type { WeightBuilder } from '../../nn/weights.ts';
import { attention, temporalAttention, temporalAttention3d } from '../../ops/attention.ts';
import { add, silu } from '../../ops/elementwise.ts';
import { meanTokens } from '../../ops/layout.ts';
import { matmul } from '../../ops/matmul.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { ConditionalGroupNorm, replace } from './blocks.ts';
import type { Conditioning } from './embeddings.ts';

/**
 * A bias-free projection to token-major (N, n, out) of x given token-major
 * (N, n, in) or channel-major (N, C, H, W), the latter read transposed by the
 * GEMM instead of being permuted first.
 */
function project(layer: Linear, x: Tensor): Tensor {
  if (x.rank !== 4) return layer.forward(x);
  const [n, c, h, w] = x.shape;
  return tidy(() => matmul(x.reshape([n, c, h * w]), layer.weight.t, { transposeA: true, transposeB: true, bias: layer.bias?.t }));
}

interface Projections {
  toQuery: Linear;
  toKey: Linear;
  toValue: Linear;
  outputLayer: Linear;
}

/** `to_query`, `to_key`, `to_value`, `output_layer`, all without bias. */
function projections(w: WeightBuilder, inChannels: number, outChannels: number, contextDim: number): Projections {
  return {
    toQuery: new Linear(w.pp('to_query'), { inFeatures: inChannels, outFeatures: outChannels, bias: false }),
    toKey: new Linear(w.pp('to_key'), { inFeatures: contextDim, outFeatures: outChannels, bias: false }),
    toValue: new Linear(w.pp('to_value'), { inFeatures: contextDim, outFeatures: outChannels, bias: false }),
    outputLayer: new Linear(w.pp('output_layer'), { inFeatures: outChannels, outFeatures: outChannels, bias: false }),
  };
}

/** The output projection in x's layout: token-major, or channel-major (N, out, H, W) for channel-major x. */
function projectOut(layer: Linear, out: Tensor, x: Tensor): Tensor {
  return x.rank === 4 ? layer.forwardChannelMajor(out, x.shape[2], x.shape[3]) : layer.forward(out);
}

function headCount(op: string, channels: number, headDim: number): number {
  if (channels % headDim !== 0) throw new ShapeError(op, `${channels} channels are not a multiple of head_dim ${headDim}`);
  return channels / headDim;
}

/**
 * Multi-head attention, heads = out / head_dim, scale head_dim^−½; masked
 * keys (mask 0) are excluded as upstream's −FLT_MAX fill does.
 */
export class Attention {
  private readonly p: Projections;
  private readonly heads: number;
  private readonly scale: number;

  constructor(w: WeightBuilder, o: { inChannels: number; outChannels: number; contextDim: number; headDim: number }) {
    this.p = projections(w, o.inChannels, o.outChannels, o.contextDim);
    this.heads = headCount('Attention', o.outChannels, o.headDim);
    this.scale = o.headDim ** -0.5;
  }

  /**
   * x token-major [N, n, in] or channel-major (N, in, H, W); context
   * [R, L, ctx] and mask [R, L] i32 (or null) with N % R = 0: keys and values
   * are projected once per context row and the kernel shares each with the
   * N/R query rows it serves. Returns x's layout: [N, n, out] or (N, out, H, W).
   */
  forward(x: Tensor, context: Tensor, mask: Tensor | null): Tensor {
    return tidy(() => {
      const q = project(this.p.toQuery, x);
      const k = this.p.toKey.forward(context);
      const v = this.p.toValue.forward(context);
      const out = attention(q, k, v, { heads: this.heads, scale: this.scale, ...(mask ? { mask } : {}) });
      return projectOut(this.p.outputLayer, out, x);
    });
  }

  /** Self-attention: queries, keys and values from x (token- or channel-major, as forward). */
  selfForward(x: Tensor): Tensor {
    return tidy(() => {
      const q = project(this.p.toQuery, x);
      const k = project(this.p.toKey, x);
      const v = project(this.p.toValue, x);
      return projectOut(this.p.outputLayer, attention(q, k, v, { heads: this.heads, scale: this.scale }), x);
    });
  }
}

/**
 * Self-attention across the frames of each video, separately for every pixel
 * and head (same keys as Attention). `attn3d` (spec §6, PROPOSED): a query at
 * (t, y, x) also sees the 3×3 neighbourhood of every frame, neighbours outside
 * the frame left out.
 */
export class TemporalAttention {
  private readonly p: Projections;
  private readonly heads: number;

  constructor(
    w: WeightBuilder,
    private readonly o: { channels: number; headDim: number; attn3d: boolean },
  ) {
    this.p = projections(w, o.channels, o.channels, o.channels);
    this.heads = headCount('TemporalAttention', o.channels, o.headDim);
  }

  /** x channel-major (B·T, C, H, W) → (B·T, C, H, W). */
  forward(x: Tensor, frames: number, height: number, width: number): Tensor {
    return tidy(() => {
      const q = project(this.p.toQuery, x);
      const k = project(this.p.toKey, x);
      const v = project(this.p.toValue, x);
      const out = this.o.attn3d
        ? temporalAttention3d(q, k, v, { heads: this.heads, frames, height, width })
        : temporalAttention(q, k, v, { heads: this.heads, frames });
      return projectOut(this.p.outputLayer, out, x);
    });
  }
}

/**
 * `feed_forward`: Conv2d 1×1 C→expansion·C `.0`, SiLU, Conv2d 1×1 back `.2`,
 * no biases; both pointwise GEMMs, the hidden activation token-major.
 */
export class FeedForward {
  private readonly up: PointwiseConv;
  private readonly down: PointwiseConv;

  constructor(w: WeightBuilder, o: { channels: number; expansionRatio: number }) {
    const hidden = o.expansionRatio * o.channels;
    this.up = new PointwiseConv(w.pp(0), { inChannels: o.channels, outChannels: hidden, bias: false });
    this.down = new PointwiseConv(w.pp(2), { inChannels: hidden, outChannels: o.channels, bias: false });
  }

  /** x (N, C, H, W) → (N, C, H, W). */
  forward(x: Tensor): Tensor {
    const [, , height, width] = x.shape;
    return tidy(() => {
      const h = this.up.tokens(x);
      return this.down.tokensToChannelMajor(replace(h, silu(h)), height, width);
    });
  }
}

export interface AttentionBlockOptions {
  channels: number;
  timeEmbedDim: number;
  /** Cross attention against the text context; null: self-attention. */
  contextDim: number | null;
  groups: number;
  headDim: number;
  expansionRatio: number;
  /** conv1d_attn1d_layers: `temporal_norm` + `temporal_attention` after the attention residual. */
  temporalLayer: boolean;
}

/**
 * in_norm → attention (cross with the mask, or self) → residual;
 * [temporal layers: temporal_norm (temporal embedding) → temporal_attention →
 * residual]; out_norm → feed_forward → residual.
 */
export class AttentionBlock {
  private readonly inNorm: ConditionalGroupNorm;
  private readonly attention: Attention;
  private readonly temporalNorm: ConditionalGroupNorm | null;
  private readonly temporalAttention: TemporalAttention | null;
  private readonly outNorm: ConditionalGroupNorm;
  private readonly feedForward: FeedForward;
  private readonly cross: boolean;

  constructor(w: WeightBuilder, o: AttentionBlockOptions) {
    const norm = (name: string) => new ConditionalGroupNorm(w.pp(name), { groups: o.groups, channels: o.channels, condDim: o.timeEmbedDim });
    this.cross = o.contextDim !== null;
    this.inNorm = norm('in_norm');
    this.attention = new Attention(w.pp('attention'), {
      inChannels: o.channels,
      outChannels: o.channels,
      contextDim: o.contextDim ?? o.channels,
      headDim: o.headDim,
    });
    this.temporalNorm = o.temporalLayer ? norm('temporal_norm') : null;
    this.temporalAttention = o.temporalLayer
      ? new TemporalAttention(w.pp('temporal_attention'), { channels: o.channels, headDim: o.headDim, attn3d: false })
      : null;
    this.outNorm = norm('out_norm');
    this.feedForward = new FeedForward(w.pp('feed_forward'), { channels: o.channels, expansionRatio: o.expansionRatio });
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    return tidy(() => {
      const [, , height, width] = x.shape;
      const normed = this.inNorm.forward(x, cond.timeSilu);
      let attended: Tensor;
      if (this.cross) {
        if (!cond.context) throw new ShapeError('AttentionBlock', 'cross attention needs a context');
        attended = this.attention.forward(normed, cond.context, cond.contextMask);
      } else {
        attended = this.attention.selfForward(normed);
      }
      normed.dispose();
      let h = add(x, attended);
      attended.dispose();
      const [norm, temporal] = [this.temporalNorm, this.temporalAttention];
      if (norm && temporal) {
        const { frames, temporalSilu } = cond;
        if (frames === null || !temporalSilu) throw new ShapeError('AttentionBlock', 'the temporal layer needs frames and the temporal embedding');
        const x1 = h;
        const t = tidy(() => temporal.forward(norm.forward(x1, temporalSilu), frames, height, width));
        h = replace(h, add(h, t));
        t.dispose();
      }
      const ff = tidy(() => this.feedForward.forward(this.outNorm.forward(h, cond.timeSilu)));
      return add(h, ff);
    });
  }
}

export interface TemporalAttentionBlockOptions {
  channels: number;
  timeEmbedDim: number;
  groups: number;
  headDim: number;
  expansionRatio: number;
  /** conv1d_attn3d_blocks (spec §6, PROPOSED). */
  attn3d: boolean;
}

/**
 * in_norm on the TEMPORAL embedding → TemporalAttention across frames →
 * residual; out_norm on the time embedding → feed_forward → residual.
 */
export class TemporalAttentionBlock {
  private readonly inNorm: ConditionalGroupNorm;
  private readonly temporalAttention: TemporalAttention;
  private readonly outNorm: ConditionalGroupNorm;
  private readonly feedForward: FeedForward;

  constructor(w: WeightBuilder, o: TemporalAttentionBlockOptions) {
    const norm = (name: string) => new ConditionalGroupNorm(w.pp(name), { groups: o.groups, channels: o.channels, condDim: o.timeEmbedDim });
    this.inNorm = norm('in_norm');
    this.temporalAttention = new TemporalAttention(w.pp('temporal_attention'), { channels: o.channels, headDim: o.headDim, attn3d: o.attn3d });
    this.outNorm = norm('out_norm');
    this.feedForward = new FeedForward(w.pp('feed_forward'), { channels: o.channels, expansionRatio: o.expansionRatio });
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    const { frames, temporalSilu } = cond;
    if (frames === null || !temporalSilu) throw new ShapeError('TemporalAttentionBlock', 'needs frames and the temporal embedding');
    return tidy(() => {
      const [, , height, width] = x.shape;
      const t = tidy(() => this.temporalAttention.forward(this.inNorm.forward(x, temporalSilu), frames, height, width));
      const h = add(x, t);
      t.dispose();
      const ff = tidy(() => this.feedForward.forward(this.outNorm.forward(h, cond.timeSilu)));
      return add(h, ff);
    });
  }
}

/**
 * `feature_pooling`: time_embed += Attention(query = the mean of the context
 * over all L tokens (masked ones included, as upstream), keys/values = the
 * context under its mask). Attention(context_dim → time_embed_dim).
 */
export class AttentionPolling {
  private readonly attention: Attention;

  constructor(w: WeightBuilder, o: { timeEmbedDim: number; contextDim: number; headDim: number }) {
    this.attention = new Attention(w.pp('attention'), { inChannels: o.contextDim, outChannels: o.timeEmbedDim, contextDim: o.contextDim, headDim: o.headDim });
  }

  /** timeEmbed [R, ted], context [R, L, D], mask [R, L] i32 or null → [R, ted]. */
  forward(timeEmbed: Tensor, context: Tensor, mask: Tensor | null): Tensor {
    return tidy(() => {
      const [rows, , dim] = context.shape;
      const query = meanTokens(context).reshape([rows, 1, dim]);
      const pooled = this.attention.forward(query, context, mask);
      return add(timeEmbed, pooled.reshape([rows, timeEmbed.shape[1]]));
    });
  }
}
