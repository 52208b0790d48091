// One U-Net level each way (spec §4): DownSampleBlock and UpSampleBlock with
// upstream's `resnet_attn_blocks.j.{0..4}` layout, where absent members keep
// their index (upstream's placeholders) so the key names stay upstream's.
import type { WeightBuilder } from '../../nn/weights.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { AttentionBlock, TemporalAttentionBlock } from './attention.ts';
import { ResNetBlock, type UpResolution } from './blocks.ts';
import { type LevelPlan, type UNetConfig, temporalBlocks, temporalLayers, upPairs } from './config.ts';
import type { Conditioning } from './embeddings.ts';
import { TemporalResNetBlock } from './temporal.ts';

/** `resnet_attn_blocks.j`: `.0` ResNetBlock, `.1` cross AttentionBlock, `.2` ResNetBlock, `.3`/`.4` TemporalResNetBlock. */
interface ResNetAttention {
  resnetIn: ResNetBlock;
  attention: AttentionBlock | null;
  resnetOut: ResNetBlock;
  temporalIn: TemporalResNetBlock | null;
  temporalOut: TemporalResNetBlock | null;
}

/** What every level's members share, read off the config once. */
class LevelParts {
  readonly blocks: boolean;
  readonly layers: boolean;
  /** Blocks carry `temporal_projection`: interpolation model or temporal layers. */
  readonly temporalConvs: boolean;

  constructor(
    readonly c: UNetConfig,
    readonly plan: LevelPlan,
  ) {
    this.blocks = temporalBlocks(c);
    this.layers = temporalLayers(c);
    this.temporalConvs = c.interpolation || this.layers;
  }

  resnet(w: WeightBuilder, inChannels: number, outChannels: number, upResolutions?: readonly UpResolution[]): ResNetBlock {
    const c = this.c;
    return new ResNetBlock(w, {
      inChannels,
      outChannels,
      timeEmbedDim: c.time_embed_dim,
      groups: c.groups,
      compressionRatio: c.compression_ratio,
      upResolutions,
      temporal: this.temporalConvs,
    });
  }

  attention(w: WeightBuilder, channels: number, contextDim: number | null): AttentionBlock {
    const c = this.c;
    return new AttentionBlock(w, {
      channels,
      timeEmbedDim: c.time_embed_dim,
      contextDim,
      groups: c.groups,
      headDim: c.head_dim,
      expansionRatio: c.expansion_ratio,
      temporalLayer: this.layers,
    });
  }

  temporalResnet(w: WeightBuilder, channels: number): TemporalResNetBlock | null {
    const c = this.c;
    if (!this.blocks) return null;
    return new TemporalResNetBlock(w, {
      channels,
      timeEmbedDim: c.time_embed_dim,
      groups: c.groups,
      compressionRatio: c.compression_ratio,
      conv3d: c.temporal_type === 'conv3d_attn1d_blocks',
    });
  }

  temporalAttention(w: WeightBuilder, channels: number): TemporalAttentionBlock | null {
    const c = this.c;
    if (!this.blocks || !this.plan.selfAttention) return null;
    return new TemporalAttentionBlock(w, {
      channels,
      timeEmbedDim: c.time_embed_dim,
      groups: c.groups,
      headDim: c.head_dim,
      expansionRatio: c.expansion_ratio,
      attn3d: c.temporal_type === 'conv1d_attn3d_blocks',
    });
  }

  selfAttention(w: WeightBuilder, channels: number): AttentionBlock | null {
    return this.plan.selfAttention ? this.attention(w, channels, null) : null;
  }

  pair(w: WeightBuilder, resnetIn: ResNetBlock, resnetOut: ResNetBlock, attentionChannels: number, temporalChannels: number): ResNetAttention {
    const ctx = this.plan.crossAttention ? this.c.context_dim : null;
    return {
      resnetIn,
      attention: ctx !== null ? this.attention(w.pp(1), attentionChannels, ctx) : null,
      resnetOut,
      temporalIn: this.temporalResnet(w.pp(3), temporalChannels),
      temporalOut: this.temporalResnet(w.pp(4), temporalChannels),
    };
  }
}

/** Runs an optional member inside its own scope, so only its output outlives it. */
function step(x: Tensor, member: { forward(x: Tensor, cond: Conditioning): Tensor } | null, cond: Conditioning, owned: boolean): Tensor {
  if (!member) return x;
  const y = member.forward(x, cond);
  if (owned) x.dispose();
  return y;
}

/**
 * `self_attention_block` → `temporal_attention_block` → for each j:
 * `.0` → `.3` → `.1` → `.2` → `.4`. The last pair's `.2` down-samples in its
 * Block 2 when the level does.
 */
export class DownSampleBlock {
  private readonly selfAttentionBlock: AttentionBlock | null;
  private readonly temporalAttentionBlock: TemporalAttentionBlock | null;
  private readonly pairs: ResNetAttention[];

  constructor(w: WeightBuilder, c: UNetConfig, plan: LevelPlan) {
    const parts = new LevelParts(c, plan);
    const { inChannels: a, outChannels: b, numBlocks } = plan;
    this.selfAttentionBlock = parts.selfAttention(w.pp('self_attention_block'), a);
    this.temporalAttentionBlock = parts.temporalAttention(w.pp('temporal_attention_block'), a);
    const lastUp: UpResolution[] = [null, null, plan.resample ? false : null, null];
    const rab = w.pp('resnet_attn_blocks');
    this.pairs = [];
    for (let j = 0; j < numBlocks; j++) {
      const pw = rab.pp(j);
      const resnetIn = parts.resnet(pw.pp(0), j === 0 ? a : b, b);
      const resnetOut = parts.resnet(pw.pp(2), b, b, j === numBlocks - 1 ? lastUp : undefined);
      this.pairs.push(parts.pair(pw, resnetIn, resnetOut, b, b));
    }
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    return tidy(() => {
      let h = step(x, this.selfAttentionBlock, cond, false);
      h = step(h, this.temporalAttentionBlock, cond, h !== x);
      for (const p of this.pairs) {
        for (const m of [p.resnetIn, p.temporalIn, p.attention, p.resnetOut, p.temporalOut]) h = step(h, m, cond, h !== x);
      }
      return h;
    });
  }
}

/**
 * for each j: `.3` → `.0` → `.1` → `.4` → `.2`; then
 * `temporal_attention_block`, then `self_attention_block`. Pairs (a → b):
 * `.0` ResNetBlock(a → a) (the first one up-samples in its Block 1), `.1`
 * AttentionBlock(a), `.2` ResNetBlock(a → b), `.3`/`.4` TemporalResNetBlock(a).
 */
export class UpSampleBlock {
  private readonly pairs: ResNetAttention[];
  private readonly temporalAttentionBlock: TemporalAttentionBlock | null;
  private readonly selfAttentionBlock: AttentionBlock | null;

  constructor(w: WeightBuilder, c: UNetConfig, plan: LevelPlan) {
    const parts = new LevelParts(c, plan);
    const rab = w.pp('resnet_attn_blocks');
    this.pairs = upPairs(plan).map(([a, b], j) => {
      const pw = rab.pp(j);
      const up: UpResolution[] | undefined = j === 0 && plan.resample ? [null, true, null, null] : undefined;
      return parts.pair(pw, parts.resnet(pw.pp(0), a, a, up), parts.resnet(pw.pp(2), a, b), a, a);
    });
    this.temporalAttentionBlock = parts.temporalAttention(w.pp('temporal_attention_block'), plan.outChannels);
    this.selfAttentionBlock = parts.selfAttention(w.pp('self_attention_block'), plan.outChannels);
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    return tidy(() => {
      let h = x;
      for (const p of this.pairs) {
        for (const m of [p.temporalIn, p.resnetIn, p.attention, p.temporalOut, p.resnetOut]) h = step(h, m, cond, h !== x);
      }
      h = step(h, this.temporalAttentionBlock, cond, h !== x);
      return step(h, this.selfAttentionBlock, cond, h !== x);
    });
  }
}
