// The PyTorch layers the models are built from, holding their parameters by
// upstream key name (`weight`, `bias`) under the builder's prefix. Named
// option objects, never positional integer lists, so that swapped sizes
// cannot type-check silently.
import { type PackedConvWeight, conv2d, convTranspose2d, packConvTransposeWeight, packConvWeight } from '../ops/conv2d.ts';
import { conv3d } from '../ops/conv3d.ts';
import { linear, matmul } from '../ops/matmul.ts';
import { groupNorm, layerNorm } from '../ops/norm.ts';
import { tidy } from '../tensor/scope.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { Param, WeightBuilder } from './weights.ts';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}

export class Linear {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: LinearOptions) {
    this.weight = w.param('weight', [options.outFeatures, options.inFeatures]);
    this.bias = options.bias === false ? null : w.param('bias', [options.outFeatures]);
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight.t, this.bias?.t);
  }

  /** Token-major x (N, H·W, in) → channel-major (N, out, H, W). */
  forwardChannelMajor(x: Tensor, height: number, width: number): Tensor {
    return tokensToChannelMajor(x, this.weight.t, this.bias?.t, height, width);
  }
}

/** Token-major x (N, H·W, in) times weight [out, in] (+ bias) → (N, out, H, W), written transposed by the GEMM: no permuted copy. */
function tokensToChannelMajor(x: Tensor, weight: Tensor, bias: Tensor | undefined, height: number, width: number): Tensor {
  return tidy(() => matmul(x, weight, { transposeB: true, transposeOut: true, bias }).reshape([x.shape[0], weight.shape[0], height, width]));
}

/**
 * A 1×1 Conv2d (weight [O, C, 1, 1]) or 1×1×1 Conv3d ([O, C, 1, 1, 1]), keyed
 * as the conv it replaces, run as a GEMM: x (N, C, H, W) is read transposed
 * by the matmul kernel and, for a channel-major result, written transposed,
 * so no layout copy is made either way. Pointwise
 * convs are ~42% of the U-Net's FLOPs; on lavapipe the GEMM ran them 1.6-1.8×
 * faster than conv2d's implicit-GEMM kernel (1.5-1.8 vs 0.9-1.0 GFLOP/s at
 * 30×256×16×16 → 1024 and 30×1024×8×8 → 256, measured on a shared machine,
 * when conv2d still repacked its weights per call), and applies weights split
 * over several buffers (the f32 feed-forward at 3072 channels is 151 MB),
 * which conv2d does not. The MoVQ's attention applies its q/k/v/proj_out
 * convs to tokens with it.
 */
export class PointwiseConv {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(
    w: WeightBuilder,
    private readonly o: { inChannels: number; outChannels: number; bias?: boolean; conv3d?: boolean },
  ) {
    const kernel = o.conv3d ? [1, 1, 1] : [1, 1];
    this.weight = w.param('weight', [o.outChannels, o.inChannels, ...kernel]);
    this.bias = o.bias === false ? null : w.param('bias', [o.outChannels]);
  }

  /** The weight as the [O, C] matrix it is (a view). */
  private matrix(): Tensor {
    return this.weight.t.reshape([this.o.outChannels, this.o.inChannels]);
  }

  /** x (N, C, H, W) → token-major (N, H·W, O). */
  tokens(x: Tensor): Tensor {
    const [n, c, h, w] = x.shape;
    return tidy(() => matmul(x.reshape([n, c, h * w]), this.matrix(), { transposeA: true, transposeB: true, bias: this.bias?.t }));
  }

  /** Token-major x (N, n, C) → (N, n, O). */
  applyTokens(x: Tensor): Tensor {
    return tidy(() => linear(x, this.matrix(), this.bias?.t));
  }

  /** Token-major x (N, H·W, C) → (N, O, H, W). */
  tokensToChannelMajor(x: Tensor, height: number, width: number): Tensor {
    return tokensToChannelMajor(x, this.matrix(), this.bias?.t, height, width);
  }

  /** x (N, C, H, W) → (N, O, H, W): read and written transposed by the GEMM, no copies. */
  forward(x: Tensor): Tensor {
    const [n, c, h, w] = x.shape;
    return tidy(() =>
      matmul(x.reshape([n, c, h * w]), this.matrix(), { transposeA: true, transposeB: true, transposeOut: true, bias: this.bias?.t }).reshape([n, this.o.outChannels, h, w]),
    );
  }
}

export type Padding2d = number | readonly [top: number, bottom: number, left: number, right: number];

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride?: number;
  padding?: Padding2d;
  bias?: boolean;
}

/** A conv layer's kernel as kept: packed for the GEMM once, when loaded. */
function packedKernel(p: Param): PackedConvWeight {
  return { packed: p.t, shape: p.shape };
}

export class Conv2d {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: Conv2dOptions) {
    const { inChannels, outChannels, kernel } = options;
    this.weight = w.param('weight', [outChannels, inChannels, kernel, kernel], packConvWeight);
    this.bias = options.bias === false ? null : w.param('bias', [outChannels]);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, packedKernel(this.weight), this.bias?.t, { stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 });
  }
}

/** ConvTranspose2d with kernel 2, stride 2 (the U-Net's up-sampling). */
export class ConvTranspose2d {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: { inChannels: number; outChannels: number; bias?: boolean }) {
    this.weight = w.param('weight', [options.inChannels, options.outChannels, 2, 2], packConvTransposeWeight);
    this.bias = options.bias === false ? null : w.param('bias', [options.outChannels]);
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, packedKernel(this.weight), this.bias?.t);
  }
}

export interface Conv3dOptions {
  inChannels: number;
  outChannels: number;
  kernel: readonly [t: number, h: number, w: number];
  padding: readonly [t: number, h: number, w: number];
  bias?: boolean;
}

/** Conv3d over videos kept as (b·t, C, H, W); `frames` = t. */
export class Conv3d {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: Conv3dOptions) {
    const { inChannels, outChannels, kernel } = options;
    this.weight = w.param('weight', [outChannels, inChannels, ...kernel], packConvWeight);
    this.bias = options.bias === false ? null : w.param('bias', [outChannels]);
  }
  forward(x: Tensor, frames: number): Tensor {
    return conv3d(x, packedKernel(this.weight), this.bias?.t, { frames, padding: this.options.padding });
  }
}

export interface GroupNormLayerOptions {
  groups: number;
  channels: number;
  eps?: number;
  affine?: boolean;
}

export class GroupNorm {
  readonly weight: Param | null;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: GroupNormLayerOptions) {
    const affine = options.affine !== false;
    this.weight = affine ? w.param('weight', [options.channels]) : null;
    this.bias = affine ? w.param('bias', [options.channels]) : null;
  }
  forward(x: Tensor, extra: { scaleShift?: Tensor; silu?: boolean } = {}): Tensor {
    return groupNorm(x, {
      groups: this.options.groups,
      eps: this.options.eps ?? 1e-5,
      weight: this.weight?.t,
      bias: this.bias?.t,
      ...extra,
    });
  }
}

export class LayerNorm {
  readonly weight: Param;
  readonly bias: Param;
  constructor(w: WeightBuilder, readonly options: { dim: number; eps?: number }) {
    this.weight = w.param('weight', [options.dim]);
    this.bias = w.param('bias', [options.dim]);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.t, this.bias.t, this.options.eps ?? 1e-5);
  }
}
