// Layout and reduction ops (kernels/layout.wgsl): everything that moves,
// gathers or reduces data rather than multiplying it. Data-movement ops are
// one strided `gather` dispatch each (concat: one per input) and work on any
// 4-byte dtype; reductions, embeddings and sinusoids compute in f32.
import { ShapeError } from '../errors.ts';
import { tidy } from '../tensor/scope.ts';
import { type DType, Tensor, numel, shapeString } from '../tensor/tensor.ts';
import { flatGrid } from './grid.ts';

/** Workgroup size (the reductions' largest; they need a power of two). */
const WG = 256;
/** Dims the gather kernel walks (two vec4s of per-dim values). */
const MAX_RANK = 8;

function requireWords(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype === 'f16') throw new ShapeError(op, `moves 4-byte elements (f32, i32, u32), got f16 ${shapeString(t.shape)}`);
  }
}

function requireDType(op: string, t: Tensor, ...dtypes: DType[]): void {
  if (!dtypes.includes(t.dtype)) throw new ShapeError(op, `needs ${dtypes.join(' or ')}, got ${t.dtype} ${shapeString(t.shape)}`);
}

function requireCount(op: string, what: string, n: number, min = 0): void {
  if (!Number.isInteger(n) || n < min) throw new ShapeError(op, `${what} must be an integer >= ${min}, got ${n}`);
}

/** A dim index in [0, rank), negative dims counting from the end (as torch). */
function axis(op: string, dim: number, rank: number): number {
  const d = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(d) || d < 0 || d >= rank) throw new ShapeError(op, `dim ${dim} out of range for rank ${rank}`);
  return d;
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let n = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = n;
    n *= shape[d];
  }
  return s;
}

/** The bits of `value` in a tensor of this dtype (the kernels write words). */
function fillBits(value: number, dtype: DType): number {
  if (dtype === 'f32') return new Uint32Array(Float32Array.of(value).buffer)[0];
  return dtype === 'i32' ? value >>> 0 : value;
}

/**
 * Merges dims that are contiguous in every stride set and drops size-1 dims,
 * so that most copies walk 1-3 dims and ranks above MAX_RANK still fit.
 */
function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const out: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => out[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => (out[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => out[k].push(s[d]));
    }
  }
  return { shape: outShape, strides: out };
}

/** One gather dispatch: see kernels/layout.wgsl. Per-dim arrays are outermost first. */
interface GatherPlan {
  /** The iteration shape: the region of `dst` written. */
  shape: readonly number[];
  srcStride: readonly number[];
  dstStride: readonly number[];
  srcOffset?: number;
  dstOffset?: number;
  /** Pad / resize: the source's extent per dim (coordinates outside it read `fill`). */
  srcShape?: readonly number[];
  /** Pad: elements before the source per dim. */
  lo?: readonly number[];
  /** Nearest resize: f32(in / out) per dim. */
  scale?: readonly number[];
  fill?: number;
}

function vec8(name: string, values: readonly number[], pad: number): Record<string, number[]> {
  const v = [...values, ...new Array<number>(MAX_RANK - values.length).fill(pad)];
  return { [`${name}0`]: v.slice(0, 4), [`${name}1`]: v.slice(4) };
}

function gather(op: string, src: Tensor, dst: Tensor, plan: GatherPlan): void {
  const count = numel(plan.shape);
  if (count === 0) return;
  let { shape, srcStride, dstStride } = plan;
  // Plain copies coalesce; pad and resize keep their dims (their maps differ per dim).
  if (!plan.srcShape) {
    const c = coalesce(shape, [srcStride, dstStride]);
    [shape, srcStride, dstStride] = [c.shape, c.strides[0], c.strides[1]];
  }
  if (shape.length > MAX_RANK) throw new ShapeError(op, `needs ${shape.length} non-contiguous dims, the kernel walks at most ${MAX_RANK}`);
  const nearest = plan.scale !== undefined;
  dst.gpu.dispatch(
    { kernel: 'layout', entry: 'gather', overrides: { WG, NEAREST: nearest } },
    {
      gather_params: {
        count,
        rank: shape.length,
        src_offset: plan.srcOffset ?? 0,
        dst_offset: plan.dstOffset ?? 0,
        fill: fillBits(plan.fill ?? 0, dst.dtype),
        ...vec8('shape', shape, 1),
        ...vec8('src_shape', plan.srcShape ?? shape, 1),
        ...vec8('src_stride', srcStride, 0),
        ...vec8('dst_stride', dstStride, 0),
        ...vec8('lo', plan.lo ?? [], 0),
        ...vec8('scale', plan.scale ?? [], 1),
      },
      src: src.binding(),
      dst: dst.binding(),
    },
    flatGrid(count, WG),
  );
}

/** Copies x into a new tensor of `shape`, walking it with x's strides `srcStride`. */
function stridedCopy(op: string, x: Tensor, shape: readonly number[], srcStride: readonly number[], srcOffset = 0): Tensor {
  const out = Tensor.empty(x.gpu, shape, x.dtype);
  gather(op, x, out, { shape, srcStride, srcOffset, dstStride: contiguousStrides(shape) });
  return out;
}

/** Nearest-neighbour resize of the last two dims, as torch F.interpolate(mode='nearest', size=[h, w]). */
export function resizeNearest(x: Tensor, height: number, width: number): Tensor {
  const op = 'resizeNearest';
  requireWords(op, x);
  if (x.rank < 2) throw new ShapeError(op, `needs [..., H, W], got ${shapeString(x.shape)}`);
  requireCount(op, 'height', height, 1);
  requireCount(op, 'width', width, 1);
  const [h, w] = x.shape.slice(-2);
  if (h === 0 || w === 0) throw new ShapeError(op, `cannot resize an empty image ${shapeString(x.shape)}`);
  const outer = numel(x.shape.slice(0, -2));
  const shape = [outer, height, width];
  const out = Tensor.empty(x.gpu, [...x.shape.slice(0, -2), height, width], x.dtype);
  // torch computes the source index in f32 with scale = f32(in) / out.
  const scale = [1, Math.fround(h / height), Math.fround(w / width)];
  gather(op, x, out, { shape, srcShape: [outer, h, w], srcStride: [h * w, w, 1], dstStride: contiguousStrides(shape), scale });
  return out;
}

/** Nearest 2× upsampling of [N, C, H, W] (the U-Net and MoVQ Upsample). */
export function upsampleNearest2x(x: Tensor): Tensor {
  if (x.rank !== 4) throw new ShapeError('upsampleNearest2x', `needs [N, C, H, W], got ${shapeString(x.shape)}`);
  return resizeNearest(x, 2 * x.shape[2], 2 * x.shape[3]);
}

/**
 * Pads the last two dims with `value`. Note the order: [top, bottom, left,
 * right], where torch's F.pad takes (left, right, top, bottom).
 */
export function pad2d(x: Tensor, pads: readonly [number, number, number, number], value = 0): Tensor {
  const op = 'pad2d';
  requireWords(op, x);
  if (x.rank < 2) throw new ShapeError(op, `needs [..., H, W], got ${shapeString(x.shape)}`);
  pads.forEach((p, i) => requireCount(op, ['top', 'bottom', 'left', 'right'][i], p));
  const [top, bottom, left, right] = pads;
  const [h, w] = x.shape.slice(-2);
  const outer = numel(x.shape.slice(0, -2));
  const shape = [outer, h + top + bottom, w + left + right];
  const out = Tensor.empty(x.gpu, [...x.shape.slice(0, -2), shape[1], shape[2]], x.dtype);
  gather(op, x, out, {
    shape,
    srcShape: [outer, h, w],
    srcStride: [h * w, w, 1],
    dstStride: contiguousStrides(shape),
    lo: [0, top, left],
    fill: value,
  });
  return out;
}

/** Concatenates tensors of one dtype and rank along `dim` (sizes may differ only there). */
export function concat(tensors: readonly Tensor[], dim: number): Tensor {
  const op = 'concat';
  if (tensors.length === 0) throw new ShapeError(op, 'needs at least one tensor');
  const first = tensors[0];
  requireWords(op, ...tensors);
  const d = axis(op, dim, first.rank);
  for (const t of tensors) {
    const same = t.dtype === first.dtype && t.rank === first.rank && t.shape.every((n, k) => k === d || n === first.shape[k]);
    if (!same) throw new ShapeError(op, `${t.dtype} ${shapeString(t.shape)} does not fit ${first.dtype} ${shapeString(first.shape)} along dim ${d}`);
  }
  const shape = [...first.shape];
  shape[d] = tensors.reduce((n, t) => n + t.shape[d], 0);
  const out = Tensor.empty(first.gpu, shape, first.dtype);
  const dstStride = contiguousStrides(shape);
  let at = 0;
  for (const t of tensors) {
    gather(op, t, out, { shape: t.shape, srcStride: contiguousStrides(t.shape), dstStride, dstOffset: at * dstStride[d] });
    at += t.shape[d];
  }
  return out;
}

/** Output dim i is x's dim perm[i] (torch permute); a copy. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const op = 'permute';
  requireWords(op, x);
  const p = perm.map((d) => axis(op, d, x.rank));
  if (p.length !== x.rank || new Set(p).size !== p.length) {
    throw new ShapeError(op, `[${perm.join(', ')}] is not a permutation of the dims of ${shapeString(x.shape)}`);
  }
  const strides = contiguousStrides(x.shape);
  return stridedCopy(op, x, p.map((d) => x.shape[d]), p.map((d) => strides[d]));
}

/** Swaps two dims (a copy). */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const perm = x.shape.map((_, i) => i);
  const a = axis('transpose', dim0, x.rank);
  const b = axis('transpose', dim1, x.rank);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** Elements [start, start + length) of `dim`, as a new tensor (torch narrow + contiguous). */
export function slice(x: Tensor, dim: number, start: number, length: number): Tensor {
  const op = 'slice';
  requireWords(op, x);
  const d = axis(op, dim, x.rank);
  requireCount(op, 'start', start);
  requireCount(op, 'length', length);
  if (start + length > x.shape[d]) throw new ShapeError(op, `${start} + ${length} exceeds dim ${d} of ${shapeString(x.shape)}`);
  const shape = [...x.shape];
  shape[d] = length;
  const strides = contiguousStrides(x.shape);
  return stridedCopy(op, x, shape, strides, start * strides[d]);
}

/** Each dim-0 row repeated `times` times consecutively (torch repeat_interleave(times, 0)). */
export function repeatRows(x: Tensor, times: number): Tensor {
  const op = 'repeatRows';
  requireWords(op, x);
  requireCount(op, 'times', times);
  if (x.rank < 1) throw new ShapeError(op, 'needs a tensor with a dim 0');
  const row = numel(x.shape.slice(1));
  const out = stridedCopy(op, x, [x.shape[0], times, row], [row, 0, 1]);
  return reshapeOwned(out, [x.shape[0] * times, ...x.shape.slice(1)]);
}

/** The whole tensor repeated `times` times along dim 0 (torch x.repeat(times, 1, ...)). */
export function tile(x: Tensor, times: number): Tensor {
  const op = 'tile';
  requireWords(op, x);
  requireCount(op, 'times', times);
  if (x.rank < 1) throw new ShapeError(op, 'needs a tensor with a dim 0');
  const out = stridedCopy(op, x, [times, x.size], [0, 1]);
  return reshapeOwned(out, [x.shape[0] * times, ...x.shape.slice(1)]);
}

/** A reshaped view that takes over the tensor's ownership. */
function reshapeOwned(t: Tensor, shape: readonly number[]): Tensor {
  const v = t.reshape(shape);
  t.dispose();
  return v;
}

/**
 * Rows of x whose mask entry is 0 set to `value`, the rest copied: with value
 * 0 this is x·mask for finite x. mask [B, L] i32 over x [B, L, ...].
 */
export function maskRows(x: Tensor, mask: Tensor, value = 0): Tensor {
  const op = 'maskRows';
  requireWords(op, x);
  requireDType(op, mask, 'i32');
  if (mask.rank >= x.rank || mask.shape.some((n, i) => n !== x.shape[i])) {
    throw new ShapeError(op, `mask ${shapeString(mask.shape)} must be a leading part of x's shape ${shapeString(x.shape)}`);
  }
  const out = Tensor.empty(x.gpu, x.shape, x.dtype);
  if (x.size === 0) return out;
  x.gpu.dispatch(
    { kernel: 'layout', entry: 'mask_rows', overrides: { WG } },
    {
      mask_params: { count: x.size, inner: x.size / mask.size, fill: fillBits(value, x.dtype) },
      src: x.binding(),
      mask: mask.binding(),
      dst: out.binding(),
    },
    flatGrid(x.size, WG),
  );
  return out;
}

/** One workgroup per row of `dim` (see RowParams in the kernel); mean drops the dim. */
function reduceRows(op: 'softmax' | 'mean', x: Tensor, dim: number): Tensor {
  requireDType(op, x, 'f32');
  const d = axis(op, dim, x.rank);
  const len = x.shape[d];
  if (len === 0) throw new ShapeError(op, `dim ${d} of ${shapeString(x.shape)} is empty`);
  const inner = numel(x.shape.slice(d + 1));
  const rows = numel(x.shape.slice(0, d)) * inner;
  const out = Tensor.empty(x.gpu, op === 'mean' ? x.shape.filter((_, i) => i !== d) : x.shape);
  // Short rows (token means, small softmaxes) would leave most of a 256-wide
  // workgroup idle: size it to the row, a power of two from 32 up to WG.
  const wg = Math.min(WG, Math.max(32, 2 ** Math.ceil(Math.log2(len))));
  x.gpu.dispatch(
    { kernel: 'layout', entry: op, overrides: { WG: wg } },
    { row_params: { rows, len, inner }, x: x.binding(), y: out.binding() },
    flatGrid(rows, 1),
  );
  return out;
}

/** Softmax along `dim` (default the last), max-subtracted. */
export const softmax = (x: Tensor, dim = -1): Tensor => reduceRows('softmax', x, dim);

/** Mean over `dim`, which is removed from the shape (torch x.mean(dim)). */
export const mean = (x: Tensor, dim: number): Tensor => reduceRows('mean', x, dim);

/** [B, L, D] → [B, D], the mean over all L tokens (masked ones are zeros and count, as the U-Net's pooling). */
export function meanTokens(x: Tensor): Tensor {
  if (x.rank !== 3) throw new ShapeError('meanTokens', `needs [B, L, D], got ${shapeString(x.shape)}`);
  return mean(x, 1);
}

/**
 * Rows of `table` [V, D] (f32 or f16) picked by `ids`: an i32 tensor of any
 * shape (→ [...ids.shape, D]; ids outside [0, V) are clamped on the device) or
 * host ids (→ [n, D]; validated, a bad id throws). Tables past the binding
 * limit (T5's shared embedding) are read part by part.
 */
export function embedding(ids: Tensor | Int32Array, table: Tensor): Tensor {
  const op = 'embedding';
  requireDType(op, table, 'f32', 'f16');
  if (table.rank !== 2) throw new ShapeError(op, `table must be [V, D], got ${shapeString(table.shape)}`);
  const [vocab, dim] = table.shape;
  if (ids instanceof Int32Array) {
    const bad = ids.findIndex((id) => id < 0 || id >= vocab);
    if (bad >= 0) throw new ShapeError(op, `id ${ids[bad]} at position ${bad} is outside the vocabulary [0, ${vocab})`);
    return tidy(() => embedding(Tensor.from(table.gpu, ids, [ids.length], 'i32'), table));
  }
  requireDType(op, ids, 'i32');
  if (vocab === 0 && ids.size > 0) throw new ShapeError(op, 'the table has no rows');
  const out = Tensor.empty(table.gpu, [...ids.shape, dim]);
  const count = out.size;
  if (count === 0) return out;
  // Each part's dispatch writes the outputs whose id falls in its rows.
  let rowStart = 0;
  for (const part of table.parts()) {
    const rows = part.shape[0];
    table.gpu.dispatch(
      { kernel: 'layout', entry: 'embedding', overrides: { WG, W_F16: table.dtype === 'f16' } },
      { embed_params: { count, dim, vocab, row_start: rowStart, rows }, ids: ids.binding(), table: part.binding(), out: out.binding() },
      flatGrid(count, WG),
    );
    part.dispose();
    rowStart += rows;
  }
  return out;
}

/**
 * The spec's SinusoidalPosEmb: positions [N] (i32 or f32) → [N, dim] =
 * [sin(x·f), cos(x·f)], f_j = exp(−j·ln(10000)/(dim/2 − 1)). sin and cos
 * are within 2e-7 of exact for the f32 argument x·f while |x·f| < 8192 (see
 * kernels/layout.wgsl); torch's f32 exp is off by 1 ulp for some f_j, which
 * moves its result by up to |x|·2^-23 from ours.
 */
export function sinusoidalEmbedding(positions: Tensor, dim: number): Tensor {
  const op = 'sinusoidalEmbedding';
  requireDType(op, positions, 'i32', 'f32');
  if (positions.rank !== 1) throw new ShapeError(op, `positions must be [N], got ${shapeString(positions.shape)}`);
  if (!Number.isInteger(dim) || dim < 4 || dim % 2 !== 0) throw new ShapeError(op, `dim must be even and >= 4, got ${dim}`);
  const gpu = positions.gpu;
  const half = dim / 2;
  const out = Tensor.empty(gpu, [positions.shape[0], dim]);
  if (out.size === 0) return out;
  tidy(() => {
    const freqs = Tensor.from(gpu, sinusoidalFrequencies(half), [half]);
    gpu.dispatch(
      { kernel: 'layout', entry: 'sinusoidal', overrides: { WG, POS_I32: positions.dtype === 'i32' } },
      { sin_params: { count: out.size, half_dim: half }, positions: positions.binding(), freqs: freqs.binding(), out: out.binding() },
      flatGrid(out.size, WG),
    );
  });
  return out;
}

/** exp(f32(j) · f32(−ln(10000)/(half − 1))) rounded to f32 at each step, as torch evaluates it. */
export function sinusoidalFrequencies(half: number): Float32Array {
  const k = Math.fround(-Math.log(10000) / (half - 1));
  return Float32Array.from({ length: half }, (_, j) => Math.exp(Math.fround(j * k)));
}
