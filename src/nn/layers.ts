// The PyTorch layers the models are built from, holding their parameters by
// upstream key name (`weight`, `bias`) under the builder's prefix. Named
// option objects, never positional integer lists, so that swapped sizes
// cannot type-check silently.
import { conv2d, convTranspose2d } from '../ops/conv2d.ts';
import { conv3d } from '../ops/conv3d.ts';
import { linear } from '../ops/matmul.ts';
import { groupNorm, layerNorm } from '../ops/norm.ts';
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

export class Conv2d {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: Conv2dOptions) {
    const { inChannels, outChannels, kernel } = options;
    this.weight = w.param('weight', [outChannels, inChannels, kernel, kernel]);
    this.bias = options.bias === false ? null : w.param('bias', [outChannels]);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight.t, this.bias?.t, { stride: this.options.stride ?? 1, padding: this.options.padding ?? 0 });
  }
}

/** ConvTranspose2d with kernel 2, stride 2 (the U-Net's up-sampling). */
export class ConvTranspose2d {
  readonly weight: Param;
  readonly bias: Param | null;
  constructor(w: WeightBuilder, readonly options: { inChannels: number; outChannels: number; bias?: boolean }) {
    this.weight = w.param('weight', [options.inChannels, options.outChannels, 2, 2]);
    this.bias = options.bias === false ? null : w.param('bias', [options.outChannels]);
  }
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight.t, this.bias?.t);
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
    this.weight = w.param('weight', [outChannels, inChannels, ...kernel]);
    this.bias = options.bias === false ? null : w.param('bias', [outChannels]);
  }
  forward(x: Tensor, frames: number): Tensor {
    return conv3d(x, this.weight.t, this.bias?.t, { frames, padding: this.options.padding });
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
