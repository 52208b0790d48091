// The keyframe model's temporal ResNet block (spec §4) and its Conv3d variant
// (spec §6, PROPOSED): four [ConditionalGroupNorm `.0`, SiLU, Conv3d `.2`]
// stages convolving each pixel over the frames, then a residual.
import { ShapeError } from '../../errors.ts';
import { Conv3d, PointwiseConv } from '../../nn/layers.ts';
import type { WeightBuilder } from '../../nn/weights.ts';
import { add } from '../../ops/elementwise.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { ConditionalGroupNorm, replace } from './blocks.ts';
import type { Conditioning } from './embeddings.ts';

export interface TemporalResNetBlockOptions {
  channels: number;
  timeEmbedDim: number;
  groups: number;
  compressionRatio: number;
  /** conv3d_attn1d_blocks: the two middle convs are 3×3×3 (padding 1) instead of (3,1,1). */
  conv3d: boolean;
}

interface Stage {
  norm: ConditionalGroupNorm;
  /** The 1×1×1 outer convs are pointwise (a GEMM); the middle ones convolve over frames. */
  conv: Conv3d | PointwiseConv;
}

/**
 * `temporal_resnet_blocks.i` for i = 0..3: channels C→h→h→h→C (h = C /
 * compression), time kernels 1, 3, 3, 1. The norms are conditioned on the
 * time embedding, not the temporal one (as upstream).
 */
export class TemporalResNetBlock {
  private readonly stages: Stage[];

  constructor(w: WeightBuilder, o: TemporalResNetBlockOptions) {
    const h = Math.floor(o.channels / o.compressionRatio);
    const channels: [number, number][] = [
      [o.channels, h],
      [h, h],
      [h, h],
      [h, o.channels],
    ];
    const blocks = w.pp('temporal_resnet_blocks');
    this.stages = channels.map(([a, b], i) => {
      const stage = blocks.pp(i);
      const outer = i === 0 || i === 3;
      const kernel = o.conv3d ? ([3, 3, 3] as const) : ([3, 1, 1] as const);
      const padding = o.conv3d ? ([1, 1, 1] as const) : ([1, 0, 0] as const);
      return {
        norm: new ConditionalGroupNorm(stage.pp(0), { groups: o.groups, channels: a, condDim: o.timeEmbedDim }),
        conv: outer
          ? new PointwiseConv(stage.pp(2), { inChannels: a, outChannels: b, conv3d: true })
          : new Conv3d(stage.pp(2), { inChannels: a, outChannels: b, kernel, padding }),
      };
    });
  }

  forward(x: Tensor, cond: Conditioning): Tensor {
    const frames = cond.frames;
    if (frames === null) throw new ShapeError('TemporalResNetBlock', 'needs the number of frames per video');
    return tidy(() => {
      let out = x;
      for (const { norm, conv } of this.stages) {
        const h = norm.forward(out, cond.timeSilu, true);
        if (out !== x) out.dispose();
        out = replace(h, conv instanceof PointwiseConv ? conv.forward(h) : conv.forward(h, frames));
      }
      return add(x, out);
    });
  }
}
