// Conv3d over videos kept as (b·t, C, H, W) (kernels/conv.wgsl): frame t of
// video b is row b·T + t; frames outside a video are zeros. Kernels (k,1,1)
// (temporal 1-D conv) and (3,3,3); stride 1.
import { ShapeError } from '../errors.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { shapeString } from '../tensor/tensor.ts';
import { checkConvOperands, dispatchConv } from './conv2d.ts';

export interface Conv3dOptions {
  /** T: frames per video; dim 0 of x must be a multiple. */
  frames: number;
  /** [pt, ph, pw]: symmetric zero padding per axis. */
  padding: readonly [number, number, number];
}

export function conv3d(x: Tensor, weight: Tensor, bias: Tensor | undefined, options: Conv3dOptions): Tensor {
  if (x.rank !== 4 || weight.rank !== 5 || weight.shape[1] !== x.shape[1]) {
    throw new ShapeError('conv3d', `needs x [B·T,C,H,W] and weight [O,C,kt,kh,kw], got ${shapeString(x.shape)} and ${shapeString(weight.shape)}`);
  }
  const [n, c, h, w] = x.shape;
  const [o, , kt, kh, kw] = weight.shape;
  const { frames, padding } = options;
  if (!Number.isInteger(frames) || frames < 1 || n % frames !== 0) throw new ShapeError('conv3d', `${n} rows are not whole videos of ${frames} frames`);
  const [pt, ph, pw] = padding;
  if (frames + 2 * pt - kt + 1 !== frames || h + 2 * ph - kh + 1 !== h || w + 2 * pw - kw + 1 !== w) {
    throw new ShapeError('conv3d', `kernel (${kt},${kh},${kw}) with padding (${pt},${ph},${pw}) must keep the size (only 'same' convolutions are used)`);
  }
  checkConvOperands('conv3d', x, weight, bias, o);
  return dispatchConv(x, weight, bias, {
    batch: n,
    inChannels: c,
    inH: h,
    inW: w,
    outChannels: o,
    outH: h,
    outW: w,
    kernel: [kt, kh, kw],
    stride: 1,
    padTop: ph,
    padLeft: pw,
    padT: pt,
    frames,
  });
}
