// MoVQ Decoder: the 1.0 image decoder, or upstream main's MOVQDecoder when a
// temporal option is on (spec §5). conv_in on the post-quant latent; mid
// block_1 / attn_1 / block_2; levels from the lowest resolution up, each with
// num_res_blocks + 1 ResnetBlocks (+ attention) and an Upsample except level
// 0; norm_out, SiLU, conv_out. Every norm is a SpatialNorm conditioned on the
// un-post-quant latent zq. Keys: decoder.up.<level> with level 0 = highest
// resolution, as upstream's `self.up.insert(0, up)`.
import { Conv2d } from '../../nn/layers.ts';
import type { WeightBuilder } from '../../nn/weights.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { AttnBlock, type DecodeContext, ResnetBlock, type ResnetTemporalOptions, SpatialNorm, TemporalAttnBlock, TemporalResnetBlock, Upsample, next, rowHalo } from './blocks.ts';
import { type Bands, bandRows, decodeBands, joinBands, nextBands, remapBands } from './bands.ts';
import { type MoVQConfig, isVideoDecoder, levelChannels } from './config.ts';

interface UpLevel {
  block: ResnetBlock[];
  /** temporal_blocks: one TemporalResnetBlock after each ResnetBlock. */
  temporal_block: TemporalResnetBlock[];
  attn: AttnBlock[];
  /** temporal_attention_block: one TemporalAttnBlock after each AttnBlock. */
  temporal_attn: TemporalAttnBlock[];
  upsample: Upsample | null;
}

interface Mid {
  block_1: ResnetBlock;
  attn_1: AttnBlock;
  temporal_attn_1: TemporalAttnBlock | null;
  temporal_block_1: TemporalResnetBlock | null;
  block_2: ResnetBlock;
  temporal_block_2: TemporalResnetBlock | null;
}

export class Decoder {
  /** Upstream main's MOVQDecoder: the batch is one video of T = batch frames. */
  readonly isVideo: boolean;
  readonly conv_in: Conv2d;
  readonly mid: Mid;
  readonly up: UpLevel[] = [];
  readonly norm_out: SpatialNorm;
  readonly conv_out: Conv2d;

  constructor(w: WeightBuilder, readonly config: MoVQConfig) {
    const c = config;
    this.isVideo = isVideoDecoder(c);
    const norm = { zqChannels: c.z_channels, addConv: c.add_conv };
    const levels = c.ch_mult.length;
    const projection = { kernel: c.temporal_kernel_size, padding: c.temporal_conv_padding };
    const temporalOf = (withProjection: boolean, flicker = false): ResnetTemporalOptions => ({
      projection: withProjection ? projection : null,
      conv3d: c.build_3D_decoder,
      // Upstream builds temporal_flicker_proj only in mid.block_1, and only
      // in a block that has the temporal layers.
      flicker: withProjection && flicker && c.flicker_augmentation,
    });
    let blockIn = levelChannels(c, levels - 1);
    let curRes = Math.floor(c.resolution / 2 ** (levels - 1));
    this.conv_in = new Conv2d(w.pp('conv_in'), { inChannels: c.z_channels, outChannels: blockIn, kernel: 3, padding: 1 });

    const mw = w.pp('mid');
    const midT = c.temporal && c.temporal_mid_blocks;
    const same = { inChannels: blockIn, outChannels: blockIn, ...norm };
    const tblock = (name: string) => (c.temporal_blocks ? new TemporalResnetBlock(mw.pp(name), { channels: blockIn, ...norm }) : null);
    this.mid = {
      block_1: new ResnetBlock(mw.pp('block_1'), { ...same, temporal: temporalOf(midT, true) }),
      attn_1: new AttnBlock(mw.pp('attn_1'), { channels: blockIn, ...norm }),
      temporal_attn_1: c.temporal_attention_block ? new TemporalAttnBlock(mw.pp('temporal_attn_1'), { channels: blockIn, ...norm }) : null,
      block_2: new ResnetBlock(mw.pp('block_2'), { ...same, temporal: temporalOf(midT) }),
      temporal_block_1: tblock('temporal_block_1'),
      temporal_block_2: tblock('temporal_block_2'),
    };

    const ups: UpLevel[] = [];
    for (let i = levels - 1; i >= 0; i--) {
      const lw = w.pp('up').pp(i);
      const out = levelChannels(c, i);
      const level: UpLevel = { block: [], temporal_block: [], attn: [], temporal_attn: [], upsample: null };
      for (let b = 0; b <= c.num_res_blocks; b++) {
        level.block.push(new ResnetBlock(lw.pp('block').pp(b), { inChannels: blockIn, outChannels: out, ...norm, temporal: temporalOf(c.temporal) }));
        blockIn = out;
        if (c.temporal_blocks) level.temporal_block.push(new TemporalResnetBlock(lw.pp('temporal_block').pp(b), { channels: out, ...norm }));
        if (c.attn_resolutions.includes(curRes)) {
          level.attn.push(new AttnBlock(lw.pp('attn').pp(b), { channels: out, ...norm }));
          if (c.temporal_attention_block) level.temporal_attn.push(new TemporalAttnBlock(lw.pp('temporal_attn').pp(b), { channels: out, ...norm }));
        }
      }
      if (i !== 0) {
        level.upsample = new Upsample(lw.pp('upsample'), { channels: blockIn, withConv: c.resamp_with_conv });
        curRes *= 2;
      }
      ups.unshift(level);
    }
    this.up = ups;
    this.norm_out = new SpatialNorm(w.pp('norm_out'), { channels: blockIn, ...norm });
    this.conv_out = new Conv2d(w.pp('conv_out'), { inChannels: blockIn, outChannels: c.out_ch, kernel: 3, padding: 1 });
  }

  /**
   * z = post_quant_conv(quant), zq = quant, both [N, z, h, w]. Image decoder:
   * N independent frames. Temporal decoder: ONE video of T = N frames (the
   * 3×3×3 convs zero-pad at its ends, temporal attention spans it, and quirk
   * 1's frame 0 is its first frame). Levels whose activations exceed one
   * storage binding run as bands of rows (bands.ts, decodeBands).
   */
  forward(z: Tensor, zq: Tensor): Tensor {
    const ctx: DecodeContext = { zq, frames: this.isVideo ? z.shape[0] : null };
    const t = ctx.frames ?? 0;
    // Quirk 1 (see AttnBlock) only in the temporal decoder.
    const q0 = this.isVideo;
    const [n, , height, width] = z.shape;
    // Band rows of each level, lowest resolution first; checked before anything runs.
    const plans = decodeBands(this.config, n, height, width, z.gpu.maxBinding);
    const rowsOf = (level: number) => plans[this.up.length - 1 - level];
    return tidy(() => {
      let h = this.conv_in.forward(z);
      const m = this.mid;
      // upstream call order: block_1, attn_1, temporal_attn_1, temporal_block_1, block_2, temporal_block_2
      h = next(h, (h) => m.block_1.forward(h, ctx));
      h = next(h, (h) => m.attn_1.forward(h, zq, q0));
      if (m.temporal_attn_1) h = next(h, (h) => m.temporal_attn_1!.forward(h, t));
      if (m.temporal_block_1) h = next(h, (h) => m.temporal_block_1!.forward(h, zq, t));
      h = next(h, (h) => m.block_2.forward(h, ctx));
      if (m.temporal_block_2) h = next(h, (h) => m.temporal_block_2!.forward(h, zq, t));
      // One band: the whole activation, run by the ops as they stand.
      let hb: Bands = [h];
      const step = (whole: (h: Tensor) => Tensor, banded: (h: Bands) => Bands) => {
        hb = nextBands(hb, (hb) => (hb.length === 1 ? [whole(hb[0])] : banded(hb)));
      };
      const attend = (f: (h: Tensor) => Tensor) => {
        // decodeBands keeps levels with attention whole.
        hb = nextBands(hb, ([h]) => [f(h)]);
      };
      for (let i = this.up.length - 1; i >= 0; i--) {
        const level = this.up[i];
        // per block: block[i], temporal_block[i], attn[i], temporal_attn[i]; then upsample
        level.block.forEach((block, b) => {
          step((h) => block.forward(h, ctx), (h) => block.forwardBands(h, ctx));
          const tb = level.temporal_block[b];
          if (tb) step((h) => tb.forward(h, zq, t), (h) => tb.forwardBands(h, zq, t));
          if (level.attn.length) {
            attend((h) => level.attn[b].forward(h, zq, q0));
            if (level.temporal_attn.length) attend((h) => level.temporal_attn[b].forward(h, t));
          }
        });
        const up = level.upsample;
        if (up) {
          const rows = rowsOf(i - 1);
          hb = nextBands(hb, (hb) => (hb.length === 1 && rows.length === 1 ? [up.forward(hb[0])] : up.forwardBands(hb, rows, { freeInput: true })));
        }
      }
      step((h) => this.norm_out.forward(h, zq, true), (h) => this.norm_out.forwardBands(h, zq, true));
      step((h) => this.conv_out.forward(h), (h) => remapBands(h, bandRows(h), 1, rowHalo(this.conv_out), (w) => this.conv_out.forward(w), { freeInput: true }));
      return joinBands(hb);
    });
  }
}
