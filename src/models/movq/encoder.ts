// MoVQ Encoder (upstream `movq.py` Encoder): conv_in; per level
// num_res_blocks ResnetBlocks (+ AttnBlock where the level's NOMINAL
// resolution is in attn_resolutions) and a Downsample except at the last
// level; mid block_1 / attn_1 / block_2; norm_out, SiLU, conv_out. Its norms
// are SpatialNorms without zq: plain GroupNorms under `.norm_layer`.
import { Conv2d } from '../../nn/layers.ts';
import type { WeightBuilder } from '../../nn/weights.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { AttnBlock, Downsample, ResnetBlock, SpatialNorm, next } from './blocks.ts';
import { type MoVQConfig, levelChannels } from './config.ts';

interface DownLevel {
  block: ResnetBlock[];
  attn: AttnBlock[];
  downsample: Downsample | null;
}

export class Encoder {
  readonly conv_in: Conv2d;
  readonly down: DownLevel[] = [];
  readonly mid: { block_1: ResnetBlock; attn_1: AttnBlock; block_2: ResnetBlock };
  readonly norm_out: SpatialNorm;
  readonly conv_out: Conv2d;

  constructor(w: WeightBuilder, readonly config: MoVQConfig) {
    const c = config;
    const plain = { zqChannels: null, addConv: false };
    this.conv_in = new Conv2d(w.pp('conv_in'), { inChannels: c.in_channels, outChannels: c.ch, kernel: 3, padding: 1 });
    // The NOMINAL resolution (config.resolution halved per level) places the
    // attention, never the input's real size (upstream's curr_res).
    let curRes = c.resolution;
    let blockIn = c.ch;
    const levels = c.ch_mult.length;
    for (let i = 0; i < levels; i++) {
      const lw = w.pp('down').pp(i);
      const out = levelChannels(c, i);
      const level: DownLevel = { block: [], attn: [], downsample: null };
      for (let b = 0; b < c.num_res_blocks; b++) {
        level.block.push(new ResnetBlock(lw.pp('block').pp(b), { inChannels: blockIn, outChannels: out, ...plain }));
        blockIn = out;
        if (c.attn_resolutions.includes(curRes)) level.attn.push(new AttnBlock(lw.pp('attn').pp(b), { channels: out, ...plain }));
      }
      if (i !== levels - 1) {
        level.downsample = new Downsample(lw.pp('downsample'), { channels: blockIn, withConv: c.resamp_with_conv });
        curRes = Math.floor(curRes / 2);
      }
      this.down.push(level);
    }
    const mw = w.pp('mid');
    this.mid = {
      block_1: new ResnetBlock(mw.pp('block_1'), { inChannels: blockIn, outChannels: blockIn, ...plain }),
      attn_1: new AttnBlock(mw.pp('attn_1'), { channels: blockIn, ...plain }),
      block_2: new ResnetBlock(mw.pp('block_2'), { inChannels: blockIn, outChannels: blockIn, ...plain }),
    };
    this.norm_out = new SpatialNorm(w.pp('norm_out'), { channels: blockIn, ...plain });
    this.conv_out = new Conv2d(w.pp('conv_out'), { inChannels: blockIn, outChannels: c.double_z ? 2 * c.z_channels : c.z_channels, kernel: 3, padding: 1 });
  }

  /** x [N, in_channels, H, W] → [N, z (2·z with double_z), H/f, W/f]; frames independent. */
  forward(x: Tensor): Tensor {
    const ctx = { zq: null, frames: null };
    return tidy(() => {
      let h = this.conv_in.forward(x);
      for (const level of this.down) {
        level.block.forEach((block, i) => {
          h = next(h, (h) => block.forward(h, ctx));
          if (level.attn.length > 0) h = next(h, (h) => level.attn[i].forward(h, null));
        });
        if (level.downsample) h = next(h, (h) => level.downsample!.forward(h));
      }
      h = next(h, (h) => this.mid.block_1.forward(h, ctx));
      h = next(h, (h) => this.mid.attn_1.forward(h, null));
      h = next(h, (h) => this.mid.block_2.forward(h, ctx));
      h = next(h, (h) => this.norm_out.forward(h, null, true));
      return next(h, (h) => this.conv_out.forward(h));
    });
  }
}
