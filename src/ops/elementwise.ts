// Elementwise ops (kernels/elementwise.wgsl). Inputs are f32 activations;
// the second operand of a binary op broadcasts (see broadcast.ts).
import { ShapeError } from '../errors.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { broadcastIndex } from './broadcast.ts';
import { flatGrid } from './grid.ts';

const WG = 256;

export const UNARY_OPS = { silu: 0, sigmoid: 1, gelu: 2, gelu_tanh: 3, affine: 4, exp: 5, relu: 6 } as const;
export const BINARY_OPS = { add: 0, mul: 1, sub: 2, axpby: 3, scale_plus_one: 4 } as const;

function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new ShapeError(op, `needs f32 tensors, got ${t.dtype} ${shapeString(t.shape)}`);
}

function unaryOp(name: keyof typeof UNARY_OPS, x: Tensor, alpha = 0, beta = 0): Tensor {
  requireF32(name, x);
  const out = Tensor.empty(x.gpu, x.shape);
  x.gpu.dispatch(
    { kernel: 'elementwise', entry: 'unary', overrides: { OP: UNARY_OPS[name], WG } },
    { params: { count: x.size, a_inner: 1, a_size: x.size, b_inner: 1, b_size: 1, alpha, beta }, a: x.binding(), out: out.binding() },
    flatGrid(x.size, WG),
  );
  return out;
}

function binaryOp(name: keyof typeof BINARY_OPS, a: Tensor, b: Tensor, alpha = 0, beta = 0): Tensor {
  requireF32(name, a, b);
  const bi = broadcastIndex(name, a.shape, b.shape);
  const out = Tensor.empty(a.gpu, a.shape);
  a.gpu.dispatch(
    { kernel: 'elementwise', entry: 'binary', overrides: { OP: BINARY_OPS[name], WG } },
    {
      params: { count: a.size, a_inner: 1, a_size: a.size, b_inner: bi.inner, b_size: bi.size, alpha, beta },
      a: a.binding(),
      b: b.binding(),
      out: out.binding(),
    },
    flatGrid(a.size, WG),
  );
  return out;
}

export const silu = (x: Tensor): Tensor => unaryOp('silu', x);
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x);
/** Exact GELU (erf). */
export const gelu = (x: Tensor): Tensor => unaryOp('gelu', x);
/** GELU with the tanh approximation (T5's gelu_new). */
export const geluTanh = (x: Tensor): Tensor => unaryOp('gelu_tanh', x);
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
export const exp = (x: Tensor): Tensor => unaryOp('exp', x);
/** alpha·x + beta. */
export const affine = (x: Tensor, alpha: number, beta: number): Tensor => unaryOp('affine', x, alpha, beta);

/** a + b, b broadcast to a's shape. */
export const add = (a: Tensor, b: Tensor): Tensor => binaryOp('add', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binaryOp('mul', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binaryOp('sub', a, b);
/** alpha·a + beta·b (classifier-free guidance, sampler updates). */
export const axpby = (alpha: number, a: Tensor, beta: number, b: Tensor): Tensor => binaryOp('axpby', a, b, alpha, beta);
/** a·(b + 1): the conditional scale of Kandinsky's norms. */
export const scalePlusOne = (a: Tensor, b: Tensor): Tensor => binaryOp('scale_plus_one', a, b);

/** (1 − w)·a + w·b for a one-element weight w (the merge parameters). */
export function lerp(a: Tensor, b: Tensor, w: Tensor): Tensor {
  requireF32('lerp', a, b, w);
  if (w.size !== 1) throw new ShapeError('lerp', `weight must have one element, got ${shapeString(w.shape)}`);
  const bi = broadcastIndex('lerp', a.shape, b.shape);
  const out = Tensor.empty(a.gpu, a.shape);
  a.gpu.dispatch(
    { kernel: 'elementwise', entry: 'lerp', overrides: { WG } },
    {
      params: { count: a.size, a_inner: 1, a_size: a.size, b_inner: bi.inner, b_size: bi.size, alpha: 0, beta: 0 },
      a: a.binding(),
      b: b.binding(),
      weight: w.binding(),
      out: out.binding(),
    },
    flatGrid(a.size, WG),
  );
  return out;
}

function rowsOf(op: string, x: Tensor, coef: Tensor): number {
  const rows = x.shape[0];
  if (coef.size !== rows) throw new ShapeError(op, `needs one coefficient per row of ${shapeString(x.shape)}, got ${shapeString(coef.shape)}`);
  return x.size / rows;
}

/** a·ca[r] + b·cb[r] for each dim-0 row r (per-sample coefficients). */
export function rowAxpby(a: Tensor, ca: Tensor, b: Tensor, cb: Tensor): Tensor {
  requireF32('rowAxpby', a, b, ca, cb);
  if (a.shape.join() !== b.shape.join()) throw new ShapeError('rowAxpby', `shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  const inner = rowsOf('rowAxpby', a, ca);
  rowsOf('rowAxpby', a, cb);
  const out = Tensor.empty(a.gpu, a.shape);
  a.gpu.dispatch(
    { kernel: 'elementwise', entry: 'row_axpby', overrides: { WG } },
    {
      params: { count: a.size, a_inner: inner, a_size: a.size, b_inner: 1, b_size: a.size, alpha: 0, beta: 0 },
      a: a.binding(),
      b: b.binding(),
      row_a: ca.binding(),
      row_b: cb.binding(),
      out: out.binding(),
    },
    flatGrid(a.size, WG),
  );
  return out;
}

/** clamp(x, −s[r], s[r]) / s[r] for each dim-0 row r. */
export function rowThreshold(x: Tensor, s: Tensor): Tensor {
  requireF32('rowThreshold', x, s);
  const inner = rowsOf('rowThreshold', x, s);
  const out = Tensor.empty(x.gpu, x.shape);
  x.gpu.dispatch(
    { kernel: 'elementwise', entry: 'row_threshold', overrides: { WG } },
    { params: { count: x.size, a_inner: inner, a_size: x.size, b_inner: 1, b_size: 1, alpha: 0, beta: 0 }, a: x.binding(), row_a: s.binding(), out: out.binding() },
    flatGrid(x.size, WG),
  );
  return out;
}
