// Matrix multiply and linear layers (kernels/matmul.wgsl). Activations are
// f32; the second operand may be an f16-packed weight. The kernel variant is
// picked per adapter by selectMatmulVariant (env KANDINSKY_MATMUL_VARIANT
// overrides it).
import { ShapeError } from '../errors.ts';
import type { BufferRange, Gpu, OverrideValues } from '../gpu/gpu.ts';
import { Tensor, numel, shapeString } from '../tensor/tensor.ts';
import { ceilDiv } from './grid.ts';

export const MATMUL_VARIANTS = ['subgroup', 'shared', 'tiled', 'naive'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** What the variant choice depends on besides the shape. */
export interface MatmulAdapterInfo {
  /** A CPU adapter (llvmpipe, SwiftShader, WARP). */
  software: boolean;
  /** The device has the 'subgroups' feature. */
  subgroups: boolean;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}

// Tile configurations (overrides of kernels/matmul.wgsl), measured with
// bench/matmul.bench.ts. subgroup: RG row groups of SG rows and CG groups of
// 4 columns per lane, WG invocations per workgroup.
// (RG 8 or CG 4 measured no faster on llvmpipe here: 9-12 GFLOP/s all.)
const SUBGROUP = { RG: 4, CG: 2, WG: 8 };
// GPUs: 64x64 workgroup tiles staged through workgroup memory, 4x4 per invocation.
const SHARED = { WG_X: 16, WG_Y: 16, TM: 4, TN4: 1, BK: 16, SHARED: true };
// Register tiles without workgroup memory: CPU adapters without subgroups
// (barriers cost a coroutine switch per SIMD group there).
const TILED = { WG_X: 8, WG_Y: 8, TM: 8, TN4: 1, BK: 1, SHARED: false };
const NAIVE = { WG_X: 16, WG_Y: 16 };

/** The subgroup size the subgroup kernels (matmul, conv) are laid out for: fixed, 4, 8 or 16. */
export function fixedSubgroupSize(info: MatmulAdapterInfo): number | null {
  const s = info.subgroupMinSize;
  if (!info.subgroups || !s || s !== info.subgroupMaxSize || ![4, 8, 16].includes(s)) return null;
  return s;
}

const NO_SUBGROUP_KERNEL = 'matmul variant subgroup needs the subgroups feature with a fixed subgroup size of 4, 8 or 16';

function envVariant(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.KANDINSKY_MATMUL_VARIANT || undefined;
}

/**
 * The kernel for an M x N x K product on this adapter; `requested` (default:
 * env KANDINSKY_MATMUL_VARIANT) forces one. GPUs stage tiles through
 * workgroup memory; CPU adapters (llvmpipe) run the subgroup kernel when they
 * have fixed-size subgroups, else register tiles. The subgroup kernel binds
 * each operand as vec4s, so operands under 16 bytes take the register tiles.
 */
export function selectMatmulVariant(m: number, n: number, k: number, info: MatmulAdapterInfo, requested = envVariant()): MatmulVariant {
  if (requested !== undefined) {
    if (!(MATMUL_VARIANTS as readonly string[]).includes(requested)) {
      throw new Error(`KANDINSKY_MATMUL_VARIANT=${requested}: expected one of ${MATMUL_VARIANTS.join(', ')}`);
    }
    if (requested === 'subgroup' && fixedSubgroupSize(info) === null) throw new Error(NO_SUBGROUP_KERNEL);
    return requested as MatmulVariant;
  }
  if (!info.software) return 'shared';
  if (fixedSubgroupSize(info) !== null && m * k >= 4 && n * k >= 8) return 'subgroup';
  return 'tiled';
}

const adapterInfos = new WeakMap<Gpu, MatmulAdapterInfo>();

export function matmulAdapterInfo(gpu: Gpu): MatmulAdapterInfo {
  let info = adapterInfos.get(gpu);
  if (!info) {
    const ai = (gpu.device as GPUDevice & { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
    info = {
      software: gpu.info.software,
      subgroups: gpu.info.features.includes('subgroups'),
      subgroupMinSize: ai?.subgroupMinSize,
      subgroupMaxSize: ai?.subgroupMaxSize,
    };
    adapterInfos.set(gpu, info);
  }
  return info;
}

/** One dispatch: out[batch · outBatch + row · outRow + (outCol + n) · outColStride] = op(a)·op(b) (+ bias[biasCol + n]). */
interface Gemm {
  a: Tensor;
  b: Tensor;
  bias?: Tensor;
  out: Tensor;
  m: number;
  n: number;
  k: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Element strides between batches (0 broadcasts b). */
  aBatch: number;
  bBatch: number;
  outBatch: number;
  outRow: number;
  outCol: number;
  outColStride: number;
  biasCol: number;
  variant?: MatmulVariant;
}

function dispatchGemm(g: Gemm): void {
  const gpu = g.a.gpu;
  if (g.m === 0 || g.n === 0 || g.batch === 0) return;
  gpu.profile?.flops('matmul', 2 * g.m * g.n * g.k * g.batch);
  const info = matmulAdapterInfo(gpu);
  const variant = g.variant ?? selectMatmulVariant(g.m, g.n, g.k, info);
  const f16 = g.b.dtype === 'f16';
  const common = { TRANS_A: g.transA, TRANS_B: g.transB, W_F16: f16 };
  let overrides: OverrideValues;
  let grid: number[];
  switch (variant) {
    case 'subgroup': {
      const sg = fixedSubgroupSize(info);
      if (sg === null) throw new Error(NO_SUBGROUP_KERNEL);
      const wg = Math.max(SUBGROUP.WG, sg);
      overrides = { ...common, VEC: g.k % 4 === 0, SG: sg, RG: SUBGROUP.RG, CG: SUBGROUP.CG, WG: wg };
      grid = [ceilDiv(g.n, 4 * SUBGROUP.CG * wg), ceilDiv(g.m, SUBGROUP.RG * sg), g.batch];
      break;
    }
    case 'shared':
    case 'tiled': {
      const t = variant === 'shared' ? SHARED : TILED;
      overrides = { ...common, ...t };
      grid = [ceilDiv(g.n, t.WG_X * 4 * t.TN4), ceilDiv(g.m, t.WG_Y * t.TM), g.batch];
      break;
    }
    case 'naive':
      overrides = { ...common, ...NAIVE };
      grid = [ceilDiv(g.n, NAIVE.WG_X), ceilDiv(g.m, NAIVE.WG_Y), g.batch];
      break;
  }
  gpu.dispatch(
    { kernel: 'matmul', entry: variant === 'shared' ? 'tiled' : variant, overrides },
    {
      params: {
        m: g.m,
        n: g.n,
        k: g.k,
        a_batch: g.aBatch,
        b_batch: g.bBatch,
        out_batch: g.outBatch,
        out_row: g.outRow,
        out_col: g.outCol,
        out_n_stride: g.outColStride,
        has_bias: g.bias ? 1 : 0,
        bias_col: g.biasCol,
      },
      a: g.a.binding(),
      b: g.b.binding(),
      // Without a bias the kernel never reads it; any read-only buffer fills the slot.
      bias: (g.bias ?? g.a).binding(),
      out: g.out.binding(),
      ...(variant === 'subgroup' ? { a_vec: vecRange(g.a), b_vec: vecRange(g.b) } : {}),
    },
    grid,
  );
}

/**
 * A tensor bound as array<vec4>: whole 16-byte units. The kernel reads it only
 * when K % 4 == 0, which makes the operand a whole number of units; otherwise
 * any 16 bytes fill the slot.
 */
function vecRange(t: Tensor): BufferRange {
  const r = t.binding();
  const offset = r.offset ?? 0;
  const size = Math.max(16, Math.floor(t.byteLength / 16) * 16);
  if (offset + size > r.buffer.size) throw new ShapeError('matmul', `${shapeString(t.shape)} ${t.dtype} is too small for the subgroup kernel`);
  return { buffer: r.buffer, offset, size };
}

function checkDtypes(op: string, a: Tensor, b: Tensor, bias: Tensor | undefined): void {
  if (a.dtype !== 'f32') throw new ShapeError(op, `activations must be f32, got ${a.dtype} ${shapeString(a.shape)}`);
  if (b.dtype !== 'f32' && b.dtype !== 'f16') throw new ShapeError(op, `weights must be f32 or f16, got ${b.dtype} ${shapeString(b.shape)}`);
  if (bias && bias.dtype !== 'f32') throw new ShapeError(op, `bias must be f32, got ${bias.dtype} ${shapeString(bias.shape)}`);
}

export interface MatmulOptions {
  /** a is [..., K, M] instead of [..., M, K]. */
  transposeA?: boolean;
  /** b is [..., N, K] (PyTorch's weight layout) instead of [..., K, N]. */
  transposeB?: boolean;
  /** [N], added to every output row. */
  bias?: Tensor;
  /** Writes [..., N, M] (the product transposed) instead of [..., M, N]: token-major products straight to channel-major. */
  transposeOut?: boolean;
  /** Forces a kernel (benchmarks, tests); default selectMatmulVariant. */
  variant?: MatmulVariant;
}

/**
 * a [...batch, M, K] · b [...batch, K, N] → [...batch, M, N] (or [...batch,
 * N, M] with transposeOut). b may have no batch dims (or one batch) and is
 * then used for every batch; b may be f16.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  const { transposeA = false, transposeB = false, transposeOut = false, bias } = options;
  checkDtypes(op, a, b, bias);
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(op, `operands need 2 or more dims, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  const [a0, a1] = a.shape.slice(-2);
  const [b0, b1] = b.shape.slice(-2);
  const [m, k] = transposeA ? [a1, a0] : [a0, a1];
  const [kb, n] = transposeB ? [b1, b0] : [b0, b1];
  const what = `${shapeString(a.shape)}${transposeA ? 'ᵀ' : ''} · ${shapeString(b.shape)}${transposeB ? 'ᵀ' : ''}`;
  if (k !== kb) throw new ShapeError(op, `inner dims differ: ${what}`);
  const batchDims = a.shape.slice(0, -2);
  const bBatchDims = b.shape.slice(0, -2);
  const batch = numel(batchDims);
  const bBatches = numel(bBatchDims);
  if (bBatches !== 1 && (bBatchDims.length !== batchDims.length || bBatchDims.some((d, i) => d !== batchDims[i]))) {
    throw new ShapeError(op, `batch dims must match or b must have one batch: ${what}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n)) throw new ShapeError(op, `bias must be [${n}], got ${shapeString(bias.shape)}`);
  const out = Tensor.empty(a.gpu, [...batchDims, ...(transposeOut ? [n, m] : [m, n])]);
  const strides = transposeOut ? { outRow: 1, outColStride: m } : { outRow: n, outColStride: 1 };
  const gemm = { a, bias, out, m, k, batch, transA: transposeA, transB: transposeB, aBatch: m * k, outBatch: m * n, ...strides, variant: options.variant };
  if (b.partCount === 1) {
    dispatchGemm({ ...gemm, b, n, bBatch: bBatches === 1 ? 0 : k * n, outCol: 0, biasCol: 0 });
    return out;
  }
  // A weight past the binding limit is split along dim 0, i.e. along N for [N, K].
  if (!transposeB || b.rank !== 2) {
    out.dispose();
    throw new ShapeError(op, `b ${shapeString(b.shape)} spans several buffers: only a 2-D [N, K] weight (transposeB) can be split`);
  }
  eachWeightPart(b, (part, col) => dispatchGemm({ ...gemm, b: part, n: part.shape[0], bBatch: 0, outCol: col, biasCol: col }));
  return out;
}

/** Calls fn for each buffer of a [N, K] weight with the index of its first row (output column). */
function eachWeightPart(weight: Tensor, fn: (part: Tensor, col: number) => void): void {
  let col = 0;
  for (const part of weight.parts()) {
    try {
      fn(part, col);
    } finally {
      part.dispose();
    }
    col += part.shape[0];
  }
}

function checkLinear(op: string, x: Tensor, weight: Tensor, bias: Tensor | undefined): { m: number; n: number; k: number } {
  checkDtypes(op, x, weight, bias);
  if (weight.rank !== 2) throw new ShapeError(op, `weight must be [N, K], got ${shapeString(weight.shape)}`);
  const [n, k] = weight.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) throw new ShapeError(op, `x ${shapeString(x.shape)} does not end in K = ${k} of weight ${shapeString(weight.shape)}`);
  return { m: k === 0 ? numel(x.shape.slice(0, -1)) : x.size / k, n, k };
}

/**
 * PyTorch's F.linear: x [..., K] · weightᵀ + bias with weight [N, K] (f32 or
 * f16) and bias [N] → [..., N]. A weight split over several buffers is
 * applied part by part into the output's column ranges.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const op = 'linear';
  const { m, n } = checkLinear(op, x, weight, bias);
  const out = Tensor.empty(x.gpu, [...x.shape.slice(0, -1), n]);
  const rows = out.reshape([m, n]);
  try {
    eachWeightPart(weight, (part, col) => linearInto(x, part, bias, rows, col));
  } finally {
    rows.dispose();
  }
  return out;
}

/**
 * out[:, col : col + Nᵢ] = x · partᵀ + bias[col : col + Nᵢ] for one part
 * [Nᵢ, K] of a weight split along N; out is [M, N] and bias the whole [N].
 * The step linear() takes per weight buffer (exported for tests).
 */
export function linearInto(x: Tensor, part: Tensor, bias: Tensor | undefined, out: Tensor, col: number): void {
  const op = 'linear';
  const { m, n, k } = checkLinear(op, x, part, bias);
  const width = out.shape[out.rank - 1];
  if (out.dtype !== 'f32' || out.rank !== 2 || out.shape[0] !== m) throw new ShapeError(op, `out must be f32 [${m}, N], got ${out.dtype} ${shapeString(out.shape)}`);
  if (!Number.isInteger(col) || col < 0 || col + n > width) throw new ShapeError(op, `columns ${col}..${col + n} do not fit out ${shapeString(out.shape)}`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== width)) throw new ShapeError(op, `bias must be [${width}], got ${shapeString(bias.shape)}`);
  dispatchGemm({ a: x, b: part, bias, out, m, n, k, batch: 1, transA: false, transB: true, aBatch: 0, bBatch: 0, outBatch: 0, outRow: width, outCol: col, outColStride: 1, biasCol: col });
}
