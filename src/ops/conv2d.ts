// conv2d and conv_transpose2d (kernels/conv.wgsl). Weights f32 or f16-packed.
import { ShapeError } from '../errors.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { flatGrid } from './grid.ts';

const WG = 64;

export type Padding = number | readonly [top: number, bottom: number, left: number, right: number];

export interface Conv2dOptions {
  stride?: number;
  padding?: Padding;
}

export interface ConvGeometry {
  batch: number;
  inChannels: number;
  inH: number;
  inW: number;
  outChannels: number;
  kh: number;
  kw: number;
  stride: number;
  pad: readonly [number, number, number, number];
  outH: number;
  outW: number;
}

/** Output geometry of a conv2d; unsupported or inconsistent arguments throw. */
export function convGeometry(inShape: readonly number[], wShape: readonly number[], options: Conv2dOptions = {}): ConvGeometry {
  if (inShape.length !== 4 || wShape.length !== 4) throw new ShapeError('conv2d', `needs x [N,C,H,W] and weight [O,C,kh,kw], got ${shapeString(inShape)} and ${shapeString(wShape)}`);
  const [batch, inChannels, inH, inW] = inShape;
  const [outChannels, wc, kh, kw] = wShape;
  if (wc !== inChannels) throw new ShapeError('conv2d', `weight ${shapeString(wShape)} expects ${wc} input channels, x has ${inChannels}`);
  const stride = options.stride ?? 1;
  const p = options.padding ?? 0;
  const pad = typeof p === 'number' ? ([p, p, p, p] as const) : p;
  if (!Number.isInteger(stride) || stride < 1 || pad.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new ShapeError('conv2d', `bad stride ${stride} or padding [${pad.join(', ')}]`);
  }
  const outH = Math.floor((inH + pad[0] + pad[1] - kh) / stride) + 1;
  const outW = Math.floor((inW + pad[2] + pad[3] - kw) / stride) + 1;
  if (outH < 1 || outW < 1) throw new ShapeError('conv2d', `kernel ${kh}x${kw} does not fit input ${inH}x${inW} with padding [${pad.join(', ')}]`);
  return { batch, inChannels, inH, inW, outChannels, kh, kw, stride, pad, outH, outW };
}

export function checkConvOperands(op: string, x: Tensor, weight: Tensor, bias: Tensor | undefined, outChannels: number): void {
  if (x.dtype !== 'f32') throw new ShapeError(op, `x must be f32, got ${x.dtype}`);
  if (weight.dtype !== 'f32' && weight.dtype !== 'f16') throw new ShapeError(op, `weight must be f32 or f16, got ${weight.dtype}`);
  if (bias && (bias.dtype !== 'f32' || bias.size !== outChannels)) throw new ShapeError(op, `bias must be f32 [${outChannels}], got ${bias.dtype} ${shapeString(bias.shape)}`);
}

export interface ConvDispatch {
  batch: number;
  inChannels: number;
  inH: number;
  inW: number;
  outChannels: number;
  outH: number;
  outW: number;
  kernel: readonly [number, number, number];
  stride: number;
  padTop: number;
  padLeft: number;
  padT: number;
  frames: number;
}

/** Records the shared conv kernel (conv2d: kernel[0] = 1, frames = 1). */
export function dispatchConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, g: ConvDispatch): Tensor {
  const out = Tensor.empty(x.gpu, [g.batch, g.outChannels, g.outH, g.outW]);
  const invocations = g.batch * Math.ceil(g.outChannels / 4) * g.outH * Math.ceil(g.outW / 4);
  x.gpu.dispatch(
    { kernel: 'conv', entry: 'conv', overrides: { WG, W_F16: weight.dtype === 'f16' } },
    {
      params: {
        batch: g.batch,
        in_c: g.inChannels,
        in_h: g.inH,
        in_w: g.inW,
        out_c: g.outChannels,
        out_h: g.outH,
        out_w: g.outW,
        k_t: g.kernel[0],
        k_h: g.kernel[1],
        k_w: g.kernel[2],
        stride: g.stride,
        pad_top: g.padTop,
        pad_left: g.padLeft,
        pad_t: g.padT,
        frames: g.frames,
        has_bias: bias ? 1 : 0,
      },
      x: x.binding(),
      w: weight.binding(),
      bias: (bias ?? x).binding(),
      out: out.binding(),
    },
    flatGrid(invocations, WG),
  );
  return out;
}

/** Conv2d of x [N,C,H,W] with weight [O,C,kh,kw]; padding [top, bottom, left, right] or one number. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, options: Conv2dOptions = {}): Tensor {
  const g = convGeometry(x.shape, weight.shape, options);
  checkConvOperands('conv2d', x, weight, bias, g.outChannels);
  return dispatchConv(x, weight, bias, {
    ...g,
    kernel: [1, g.kh, g.kw],
    padTop: g.pad[0],
    padLeft: g.pad[2],
    padT: 0,
    frames: 1,
  });
}

/** ConvTranspose2d, kernel 2, stride 2, weight [C, O, 2, 2] (PyTorch layout). */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (x.rank !== 4 || weight.rank !== 4 || weight.shape[0] !== x.shape[1] || weight.shape[2] !== 2 || weight.shape[3] !== 2) {
    throw new ShapeError('convTranspose2d', `needs x [N,C,H,W] and weight [C,O,2,2], got ${shapeString(x.shape)} and ${shapeString(weight.shape)}`);
  }
  const [n, c, h, w] = x.shape;
  const o = weight.shape[1];
  checkConvOperands('convTranspose2d', x, weight, bias, o);
  const out = Tensor.empty(x.gpu, [n, o, 2 * h, 2 * w]);
  x.gpu.dispatch(
    { kernel: 'conv', entry: 'conv_transpose2x2', overrides: { WG, W_F16: weight.dtype === 'f16' } },
    {
      params: { batch: n, in_c: c, in_h: h, in_w: w, out_c: o, out_h: 2 * h, out_w: 2 * w, k_t: 1, k_h: 2, k_w: 2, stride: 2, pad_top: 0, pad_left: 0, pad_t: 0, frames: 1, has_bias: bias ? 1 : 0 },
      x: x.binding(),
      w: weight.binding(),
      bias: (bias ?? x).binding(),
      out: out.binding(),
    },
    flatGrid(out.size, WG),
  );
  return out;
}
