// Conv3d over videos kept as (b·t, C, H, W), without a transpose copy: frame
// t of video b is row b·T + t, a temporal tap reads another row of the same
// video and frames outside it are zeros. Runs the conv2d implicit GEMM
// (kernels/conv2d.wgsl) with the temporal taps added to the reduction.
import { ShapeError } from '../errors.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { tidy } from '../tensor/scope.ts';
import { type ConvGemm, type ConvVariant, type ConvWeight, checkConvOperands, checkOptionKeys, dispatchConvGemm, naiveConv, packConvWeight, packedFor } from './conv2d.ts';

export interface Conv3dOptions {
  /** T: frames per video; dim 0 of x holds whole videos. */
  frames: number;
  /** [pt, ph, pw]: zero padding on both sides of each axis. */
  padding: readonly [t: number, h: number, w: number];
  /** Forces parts of the kernel variant (tests, benchmarks). */
  variant?: Partial<ConvVariant>;
}

const CONV3D_OPTIONS = new Set(['frames', 'padding', 'variant']);

/** The implicit GEMM of conv3d(x [B·T,C,H,W], weight [O,C,kt,kh,kw]); unsupported arguments throw. */
export function conv3dGeometry(inShape: readonly number[], wShape: readonly number[], options: Conv3dOptions): ConvGemm {
  const op = 'conv3d';
  checkOptionKeys(op, options, CONV3D_OPTIONS);
  if (inShape.length !== 4 || wShape.length !== 5) {
    throw new ShapeError(op, `needs x [B·T,C,H,W] and weight [O,C,kt,kh,kw], got ${shapeString(inShape)} and ${shapeString(wShape)}`);
  }
  const [n, c, h, w] = inShape;
  const [o, wc, kt, kh, kw] = wShape;
  if (wc !== c) throw new ShapeError(op, `weight ${shapeString(wShape)} expects ${wc} input channels, x ${shapeString(inShape)} has ${c}`);
  if (![o, kt, kh, kw].every((v) => Number.isInteger(v) && v >= 1)) throw new ShapeError(op, `empty channels or kernel in weight ${shapeString(wShape)}`);
  const { frames, padding } = options;
  if (!Number.isInteger(frames) || frames < 1 || n % frames !== 0) throw new ShapeError(op, `${n} rows are not whole videos of ${frames} frames`);
  if (padding?.length !== 3 || !padding.every((p) => Number.isInteger(p) && p >= 0)) throw new ShapeError(op, `padding must be [pt, ph, pw] counts, got ${String(padding)}`);
  const [pt, ph, pw] = padding;
  // Stride 1 and 'same' size on every axis: the output keeps the (b·t) rows.
  if (2 * pt !== kt - 1 || 2 * ph !== kh - 1 || 2 * pw !== kw - 1) {
    throw new ShapeError(op, `kernel (${kt},${kh},${kw}) with padding (${pt},${ph},${pw}) does not keep the size; only 'same' convolutions (padding (k-1)/2) are supported`);
  }
  return {
    op,
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
    wBase: 0,
    place: { rows: h, cols: w, step: 1, dy: 0, dx: 0 },
  };
}

/** Conv3d of videos x [B·T,C,H,W] with weight [O,C,kt,kh,kw] (f32 or f16, or that kernel packed once) and optional bias [O]. */
export function conv3d(x: Tensor, weight: ConvWeight, bias: Tensor | undefined, options: Conv3dOptions): Tensor {
  const g = conv3dGeometry(x.shape, weight.shape, options);
  checkConvOperands(g.op, x, weight, bias, g.outChannels);
  const out = Tensor.empty(x.gpu, [g.batch, g.outChannels, g.outH, g.outW]);
  const taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  tidy(() => {
    const packed = packedFor(g.op, weight, g.outChannels, g.inChannels, taps, packConvWeight);
    dispatchConvGemm(x, packed, bias, out, [g], options.variant);
  });
  return out;
}

/** conv3d by the naive kernel (same arguments; single-buffer tensors). */
export function conv3dNaive(x: Tensor, weight: Tensor, bias: Tensor | undefined, options: Conv3dOptions): Tensor {
  const g = conv3dGeometry(x.shape, weight.shape, options);
  checkConvOperands(g.op, x, weight, bias, g.outChannels);
  return naiveConv(x, weight, bias, g);
}
