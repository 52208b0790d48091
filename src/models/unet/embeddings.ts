// The U-Net's embeddings (spec §3-4): `to_time_embed`, `to_temporal_embed` and
// `perturbation_to_time_embed` share one shape (SinusoidalPosEmb → Linear `.1`
// → SiLU → Linear `.3`), and `Conditioning` is what every block receives
// besides its input.
import { Linear } from '../../nn/layers.ts';
import type { WeightBuilder } from '../../nn/weights.ts';
import { silu } from '../../ops/elementwise.ts';
import { sinusoidalEmbedding } from '../../ops/layout.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';

/**
 * Per-forward inputs of the blocks, computed once by UNet.forward.
 *
 * Row sharing: x has N rows; the time embedding and the context have R rows
 * with N % R = 0, row r serving x rows [r·N/R, (r+1)·N/R). R = N is the
 * reference layout (one entry per frame); R = number of videos lets the
 * pipeline skip computing the same context projections for every frame.
 */
export interface Conditioning {
  /**
   * SiLU(time embedding) [R, ted]. Every time-conditioned norm starts its
   * `context_mlp` with this SiLU, so it is applied once here.
   */
  readonly timeSilu: Tensor;
  /** SiLU(temporal embedding) [N, ted] (keyframe model), else null. */
  readonly temporalSilu: Tensor | null;
  /** Text context [R, L, context_dim], or null. */
  readonly context: Tensor | null;
  /** Key mask [R, L] i32 (1 = attend), one row per context row; null = attend to all. */
  readonly contextMask: Tensor | null;
  /** Frames per video of the temporal blocks / temporal attention (keyframe model), else null. */
  readonly frames: number | null;
  /**
   * The axis the Blocks' `temporal_projection` convolves over: the groups of
   * the interpolation model or the frames of the temporal-layers variant;
   * null leaves those convs out (as upstream without num_temporal_groups).
   */
  readonly blockGroups: number | null;
}

/** SinusoidalPosEmb(sinDim) → Linear `.1` → SiLU → Linear `.3` (an nn.Sequential upstream, hence the indices). */
export class EmbeddingMLP {
  private readonly hidden: Linear;
  private readonly out: Linear;

  constructor(
    w: WeightBuilder,
    private readonly options: { sinDim: number; embedDim: number },
  ) {
    this.hidden = new Linear(w.pp(1), { inFeatures: options.sinDim, outFeatures: options.embedDim });
    this.out = new Linear(w.pp(3), { inFeatures: options.embedDim, outFeatures: options.embedDim });
  }

  /** positions [N] (i32: times or frame positions) → [N, embedDim]. */
  forward(positions: Tensor): Tensor {
    return tidy(() => this.out.forward(silu(this.hidden.forward(sinusoidalEmbedding(positions, this.options.sinDim)))));
  }
}
