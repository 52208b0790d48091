// conv2d and conv_transpose2d (kernels/conv2d.wgsl), and the implicit-GEMM
// dispatch that conv3d (./conv3d.ts) shares. Weights are f32 or f16-packed
// PyTorch tensors, which the kernel reads repacked to [tap][C][O_pad] so that
// 4 output channels' weights are one 16-byte load. The nn layers pack once,
// when their weights load (packConvWeight / packConvTransposeWeight), and
// pass a PackedConvWeight; a plain tensor is packed on every call (one pass
// over the weights: a third of the 1536-channel 3×3 conv's time on 8×8).
// Large 3×3 convs go to Winograd F(2×2, 3×3) instead (./winograd.ts).
import { DeviceLimitError, ShapeError } from '../errors.ts';
import type { BufferRange, Gpu, KernelCall } from '../gpu/gpu.ts';
import { Tensor, type TensorOptions, shapeString } from '../tensor/tensor.ts';
import { tidy } from '../tensor/scope.ts';
import { flatGrid } from './grid.ts';
import { concat, slice } from './layout.ts';
import { fixedSubgroupSize, matmulAdapterInfo } from './matmul.ts';
import { partOf, rowParts } from './parts.ts';
import { conv2dWinograd, winogradApplies, winogradPays } from './winograd.ts';

export type Padding = number | readonly [top: number, bottom: number, left: number, right: number];

/**
 * Tile shape and strategy of the implicit-GEMM kernel (override constants).
 * Entry `conv`: each invocation owns 4·NQ output channels × 4·PV output
 * pixels and adds U input channels per accumulator update; STAGE stages CC
 * input channels' weights in workgroup memory (GPUs). SUBGROUP selects entry
 * `conv_subgroup` instead (CPU adapters with fixed-size subgroups): each
 * subgroup computes RG·SG pixels × 4·CG·SG channels, WG a multiple of SG.
 */
export interface ConvVariant {
  WG: number;
  NQ: number;
  PV: number;
  U: number;
  STAGE: boolean;
  CC: number;
  SUBGROUP: boolean;
  RG: number;
  CG: number;
}

export interface Conv2dOptions {
  stride?: number;
  padding?: Padding;
  /** Forces parts of the kernel variant (tests, benchmarks); chosen per adapter otherwise. */
  variant?: Partial<ConvVariant>;
  /**
   * Forces the implicit-GEMM kernel ('direct') or Winograd F(2×2, 3×3)
   * (./winograd.ts; 3×3, stride 1, padding 1 only); chosen per adapter and
   * shape otherwise (winogradPays).
   */
  algorithm?: 'direct' | 'winograd';
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
  /** [top, bottom, left, right]. */
  pad: readonly [number, number, number, number];
  outH: number;
  outW: number;
}

const CONV2D_OPTIONS = new Set(['stride', 'padding', 'variant', 'algorithm']);

/** Rejects option keys the op does not implement (dilation, groups, ...) instead of ignoring them. */
export function checkOptionKeys(op: string, options: object, known: ReadonlySet<string>): void {
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new ShapeError(op, `option '${key}' is not supported (supported: ${[...known].join(', ')})`);
  }
}

function isCount(v: number, min: number): boolean {
  return Number.isInteger(v) && v >= min;
}

/** Output geometry of conv2d(x [N,C,H,W], weight [O,C,kh,kw]); unsupported or inconsistent arguments throw. */
export function convGeometry(inShape: readonly number[], wShape: readonly number[], options: Conv2dOptions = {}): ConvGeometry {
  const op = 'conv2d';
  checkOptionKeys(op, options, CONV2D_OPTIONS);
  if (inShape.length !== 4 || wShape.length !== 4) {
    throw new ShapeError(op, `needs x [N,C,H,W] and weight [O,C,kh,kw], got ${shapeString(inShape)} and ${shapeString(wShape)}`);
  }
  const [batch, inChannels, inH, inW] = inShape;
  const [outChannels, wc, kh, kw] = wShape;
  if (wc !== inChannels) throw new ShapeError(op, `weight ${shapeString(wShape)} expects ${wc} input channels, x ${shapeString(inShape)} has ${inChannels}`);
  if (![inChannels, outChannels, kh, kw].every((v) => isCount(v, 1))) throw new ShapeError(op, `empty channels or kernel in weight ${shapeString(wShape)}`);
  const stride = options.stride ?? 1;
  const p = options.padding ?? 0;
  const pad = typeof p === 'number' ? ([p, p, p, p] as const) : p;
  if (!isCount(stride, 1)) throw new ShapeError(op, `stride must be a positive integer, got ${stride}`);
  if (pad.length !== 4 || !pad.every((v) => isCount(v, 0))) throw new ShapeError(op, `padding must be a count or [top, bottom, left, right] counts, got ${String(p)}`);
  const outH = Math.floor((inH + pad[0] + pad[1] - kh) / stride) + 1;
  const outW = Math.floor((inW + pad[2] + pad[3] - kw) / stride) + 1;
  if (outH < 1 || outW < 1) throw new ShapeError(op, `kernel ${kh}x${kw} does not fit input ${inH}x${inW} with padding [${pad.join(', ')}]`);
  return { batch, inChannels, inH, inW, outChannels, kh, kw, stride, pad, outH, outW };
}

export function checkConvOperands(op: string, x: Tensor, weight: ConvWeight, bias: Tensor | undefined, outChannels: number): void {
  if (x.dtype !== 'f32') throw new ShapeError(op, `x must be f32, got ${x.dtype}`);
  const wd = weightDType(weight);
  if (wd !== 'f32' && wd !== 'f16') throw new ShapeError(op, `weight must be f32 or f16, got ${wd}`);
  if (bias && (bias.dtype !== 'f32' || bias.rank !== 1 || bias.size !== outChannels)) {
    throw new ShapeError(op, `bias must be f32 [${outChannels}], got ${bias.dtype} ${shapeString(bias.shape)}`);
  }
}

/** One implicit GEMM: rows of x → rows of out (conv2d, conv3d, one tap of the transposed conv). */
export interface ConvGemm {
  op: string;
  /** Rows (images or frames) of x and out. */
  batch: number;
  inChannels: number;
  inH: number;
  inW: number;
  outChannels: number;
  /** Output pixel grid of the GEMM. */
  outH: number;
  outW: number;
  kernel: readonly [t: number, h: number, w: number];
  stride: number;
  padTop: number;
  padLeft: number;
  /** Temporal padding and frames per video (0 and 1 for 2-D convs). */
  padT: number;
  frames: number;
  /** First weight quad (the transposed conv's tap). */
  wBase: number;
  /** Grid pixel (y, x) lands at (y·step + dy, x·step + dx) of an outRows × outCols plane. */
  place: { rows: number; cols: number; step: number; dy: number; dx: number };
}

/** Output channels of the packed weights: whole 16-byte rows of f16 halves. */
const padChannels = (o: number): number => Math.ceil(o / 8) * 8;

/**
 * Repacks weight elements (o, c, tap), found at o·so + c·sc + tap·st, to a
 * [taps, C, O_pad] tensor of the weight's dtype, zero past O.
 */
function packWeights(weight: Tensor, outChannels: number, inChannels: number, taps: number, strides: readonly [so: number, sc: number, st: number], options: TensorOptions): Tensor {
  const oPad = padChannels(outChannels);
  const packed = Tensor.empty(weight.gpu, [taps, inChannels, oPad], weight.dtype, options);
  const f16 = weight.dtype === 'f16';
  // One invocation per 16 bytes of a packed row: taps along x, input channels along y.
  const WG = 64;
  const grid = [taps, inChannels, Math.ceil(oPad / (f16 ? 8 : 4) / WG)];
  const maxWg = weight.gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.max(...grid) > maxWg) throw new DeviceLimitError('maxComputeWorkgroupsPerDimension', Math.max(...grid), maxWg, `packing a weight of ${inChannels} input channels and ${taps} taps`);
  weight.gpu.dispatch(
    { kernel: 'conv2d', entry: 'pack', overrides: { WG, W_F16: f16 } },
    {
      pk: { out_c: outChannels, in_c: inChannels, o_pad: oPad, s_o: strides[0], s_c: strides[1], s_t: strides[2] },
      src: weight.binding(),
      dst: packed.binding(),
    },
    grid,
  );
  return packed;
}

/** A conv kernel repacked for the GEMM ([taps, C, O_pad]) and the PyTorch shape it came from. */
export interface PackedConvWeight {
  packed: Tensor;
  shape: readonly number[];
}

/** A PyTorch-layout kernel (packed on each call) or one packed once. */
export type ConvWeight = Tensor | PackedConvWeight;

function isPacked(w: ConvWeight): w is PackedConvWeight {
  return !(w instanceof Tensor);
}

/** Packs a conv2d [O,C,kh,kw] or conv3d [O,C,kt,kh,kw] kernel once (the layers' stored form). */
export function packConvWeight(weight: Tensor, options: TensorOptions = {}): Tensor {
  if (weight.rank !== 4 && weight.rank !== 5) throw new ShapeError('packConvWeight', `needs [O,C,kh,kw] or [O,C,kt,kh,kw], got ${shapeString(weight.shape)}`);
  const [o, c] = weight.shape;
  const taps = weight.size / (o * c);
  return packWeights(weight, o, c, taps, [c * taps, taps, 1], options);
}

/** Packs a ConvTranspose2d [C,O,2,2] kernel once (the layers' stored form). */
export function packConvTransposeWeight(weight: Tensor, options: TensorOptions = {}): Tensor {
  if (weight.rank !== 4 || weight.shape[2] !== 2 || weight.shape[3] !== 2) throw new ShapeError('packConvTransposeWeight', `needs [C,O,2,2], got ${shapeString(weight.shape)}`);
  const [c, o] = weight.shape;
  return packWeights(weight, o, c, 4, [4, 4 * o, 1], options);
}

/**
 * The packed kernel of w, made in the caller's scope when w is a plain tensor;
 * a packed one is checked against the [taps, C, O_pad] its shape implies.
 */
export function packedFor(op: string, w: ConvWeight, outChannels: number, inChannels: number, taps: number, pack: (t: Tensor) => Tensor): Tensor {
  if (!isPacked(w)) return pack(w);
  const want = [taps, inChannels, padChannels(outChannels)];
  if (w.packed.rank !== 3 || w.packed.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(op, `packed weight ${shapeString(w.packed.shape)} does not match kernel ${shapeString(w.shape)} (expected ${shapeString(want)})`);
  }
  return w.packed;
}

function weightDType(w: ConvWeight): Tensor['dtype'] {
  return isPacked(w) ? w.packed.dtype : w.dtype;
}

const MAX_NQ = 8;
const MAX_PV = 4;
const MAX_RG = 4;
const MAX_CG = 2;
const CHANNELS_LAST_WG = 64;

/**
 * The kernel variant for an adapter and problem. Software adapters (lavapipe:
 * an invocation is a SIMD lane, a workgroup runs on one CPU thread, barriers
 * are costly) with fixed-size subgroups get the subgroup kernel when there
 * are enough output channels to fill its lanes (4·CG·SG = 64 per subgroup on
 * lavapipe: at 32 half idle; the narrow convs, RGB and latents, would leave
 * most idle), else a large
 * register tile without barriers; GPUs stage weights in workgroup memory.
 * Few distinct variants: lavapipe's LLVM takes seconds to compile each (see
 * bench/conv2d.bench.ts for the measurements).
 */
export function convVariant(gpu: Gpu, g: ConvGemm, f16: boolean, forced: Partial<ConvVariant> = {}): ConvVariant {
  const software = gpu.info.software;
  const sg = fixedSubgroupSize(matmulAdapterInfo(gpu));
  // Its grid has a workgroup per RG·SG output pixels, its input copy one per
  // CHANNELS_LAST_WG input pixels: larger images fall back to the tile.
  const maxWg = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  const fits = sg !== null && Math.ceil((g.outH * g.outW) / (MAX_RG * sg)) <= maxWg && Math.ceil((g.inH * g.inW) / CHANNELS_LAST_WG) <= maxWg;
  const SUBGROUP = forced.SUBGROUP ?? (software && fits && g.outChannels >= 32);
  if (SUBGROUP && sg === null) throw new ShapeError(g.op, 'variant SUBGROUP needs the subgroups feature with a fixed subgroup size of 4, 8 or 16');
  // 32 output channels per invocation, or 8 for the few narrow convs (RGB, latents).
  const NQ = forced.NQ ?? (software && g.outChannels > 8 ? MAX_NQ : 2);
  const PV = forced.PV ?? (software ? 2 : 1);
  // CPUs: whole SIMD rows (8 lanes), a power of two no wider than the image needs.
  const lanes = Math.ceil((g.outH * g.outW) / (4 * PV));
  const tileWg = software ? Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(lanes)))) : 64;
  const WG = forced.WG ?? (SUBGROUP ? sg! : tileWg);
  const v = { WG, NQ, PV, U: forced.U ?? 2, STAGE: forced.STAGE ?? !software, CC: forced.CC ?? 16, SUBGROUP, RG: forced.RG ?? MAX_RG, CG: forced.CG ?? MAX_CG };
  // f16 quads are read two per 16-byte load, so the tile starts on an even quad.
  if (!isCount(v.NQ, 1) || v.NQ > MAX_NQ || (f16 && v.NQ % 2 !== 0)) throw new ShapeError(g.op, `variant NQ must be 1..${MAX_NQ}${f16 ? ', even for f16 weights' : ''}, got ${v.NQ}`);
  if (!isCount(v.PV, 1) || v.PV > MAX_PV) throw new ShapeError(g.op, `variant PV must be 1..${MAX_PV}, got ${v.PV}`);
  if (v.U !== 1 && v.U !== 2) throw new ShapeError(g.op, `variant U must be 1 or 2, got ${v.U}`);
  if (!isCount(v.WG, 1) || !isCount(v.CC, 2) || v.CC % 2 !== 0) throw new ShapeError(g.op, `variant WG ${v.WG} / CC ${v.CC} must be counts, CC even`);
  if (!isCount(v.RG, 1) || v.RG > MAX_RG) throw new ShapeError(g.op, `variant RG must be 1..${MAX_RG}, got ${v.RG}`);
  if (!isCount(v.CG, 1) || v.CG > MAX_CG || (f16 && v.CG !== MAX_CG)) throw new ShapeError(g.op, `variant CG must be 1..${MAX_CG}${f16 ? ' (2 for f16 weights)' : ''}, got ${v.CG}`);
  if (v.SUBGROUP && v.WG % sg! !== 0) throw new ShapeError(g.op, `variant WG ${v.WG} must be a multiple of the subgroup size ${sg}`);
  return v;
}

/** Rows row0..row0 + rows of x [N, C, H·W] as [rows, H·W, C4] (C4: C rounded up to 4, zeros past C). */
function channelsLast(x: Tensor, row0: number, rows: number, channels: number, hw: number): Tensor {
  const c4 = Math.ceil(channels / 4);
  const out = Tensor.empty(x.gpu, [rows, hw, 4 * c4]);
  const WG = CHANNELS_LAST_WG;
  x.gpu.dispatch(
    { kernel: 'conv2d', entry: 'channels_last', overrides: { WG } },
    { lp: { in_c: channels, hw, row0 }, x: x.binding(), x_cl: out.binding() },
    [Math.ceil(hw / WG), c4, rows],
  );
  return out;
}

/**
 * Records the implicit-GEMM convs of x into out (created by the caller): one
 * GEMM, or several that read the same input with other weights and output
 * places (the transposed conv's taps), which then share each input copy.
 * Rows are processed in ranges whose output lies in one part of out and whose
 * input rows (with a temporal kernel, the neighbouring frames) lie in one
 * part of x; when they straddle two parts, those rows are copied together.
 */
export function dispatchConvGemm(x: Tensor, packed: Tensor, bias: Tensor | undefined, out: Tensor, gemms: readonly ConvGemm[], forced: Partial<ConvVariant> = {}): void {
  const gpu = x.gpu;
  const g = gemms[0];
  const f16 = packed.dtype === 'f16';
  const v = convVariant(gpu, g, f16, forced);
  const [kt, kh, kw] = g.kernel;
  const hw = g.inH * g.inW;
  // One quad of pixels is 4 aligned, contiguous input values.
  const XV4 = kh === 1 && kw === 1 && g.stride === 1 && g.padTop === 0 && g.padLeft === 0 && hw % 4 === 0 && g.outH === g.inH && g.outW === g.inW;
  const npix = g.outH * g.outW;
  gpu.profile?.flops('conv2d', 2 * g.outChannels * g.inChannels * kt * kh * kw * npix * g.batch * gemms.length);
  const sg = v.SUBGROUP ? fixedSubgroupSize(matmulAdapterInfo(gpu))! : 0;
  const grid = v.SUBGROUP
    ? [Math.ceil(npix / (v.RG * sg)), Math.ceil(g.outChannels / (4 * v.CG * v.WG))]
    : [Math.ceil(npix / (v.WG * 4 * v.PV)), Math.ceil(g.outChannels / (4 * v.NQ))];
  const call: KernelCall = v.SUBGROUP
    ? { kernel: 'conv2d', entry: 'conv_subgroup', overrides: { WG: v.WG, SG: sg, RG: v.RG, CG: v.CG, W_F16: f16 } }
    : { kernel: 'conv2d', entry: 'conv', overrides: { WG: v.WG, NQ: v.NQ, PV: v.PV, U: v.U, STAGE: v.STAGE, CC: v.CC, W_F16: f16, XV4 } };
  const maxWg = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  if (grid[0] > maxWg) throw new DeviceLimitError('maxComputeWorkgroupsPerDimension', grid[0], maxWg, `${g.op} on ${npix} pixels`);
  // The subgroup kernel reads a channels-last copy of the rows it needs, channels padded to 4.
  const rowBytes = (v.SUBGROUP ? 4 * Math.ceil(g.inChannels / 4) : g.inChannels) * hw * 4;
  const maxRows = Math.min(Math.floor(gpu.maxBinding / rowBytes), v.SUBGROUP ? maxWg : Infinity);
  if (maxRows < kt) throw new DeviceLimitError('maxStorageBufferBindingSize', kt * rowBytes, gpu.maxBinding, `${g.op}: ${kt} input frames of ${rowBytes} bytes`);
  const frames = g.frames;
  // Input rows image n reads: its own frame and the taps' neighbours inside its video.
  const firstNeeded = (n: number): number => Math.max(n - (n % frames), n - g.padT);
  const lastNeeded = (n: number): number => Math.min(n - (n % frames) + frames - 1, n + kt - 1 - g.padT);
  tidy(() => {
    const xs = rowParts(x);
    const outs = rowParts(out);
    for (let a = 0; a < g.batch; ) {
      const o = partOf(outs, a);
      let b = Math.min(g.batch, o.first + o.t.shape[0], a + maxWg);
      while (lastNeeded(b - 1) + 1 - firstNeeded(a) > maxRows) b--;
      const lo = firstNeeded(a);
      const hi = lastNeeded(b - 1) + 1;
      const p = partOf(xs, lo);
      let input = p.t;
      let xRow0 = p.first;
      if (hi > p.first + p.t.shape[0]) {
        // The rows straddle parts of x: copy them into one tensor.
        const pieces = xs.filter((q) => q.first < hi && q.first + q.t.shape[0] > lo).map((q) => {
          const s = Math.max(lo, q.first);
          return slice(q.t, 0, s - q.first, Math.min(hi, q.first + q.t.shape[0]) - s);
        });
        input = concat(pieces, 0);
        xRow0 = lo;
      }
      let xBindings: Record<string, BufferRange>;
      if (v.SUBGROUP) {
        xBindings = { x4: channelsLast(input, lo - xRow0, hi - lo, g.inChannels, hw).binding() };
        xRow0 = lo;
      } else {
        const xb = input.binding();
        // x4 is unread unless XV4; packed weights are at least 16 bytes.
        xBindings = { x: xb, x4: XV4 ? xb : { ...packed.binding(), size: 16 } };
      }
      for (const gemm of gemms) {
        gpu.dispatch(
          call,
          {
            params: {
              n_first: a,
              x_row0: xRow0,
              out_row0: o.first,
              ...geometryUniforms(g),
              w_row_quads: packed.shape[2] / 4,
              w_base: gemm.wBase,
              out_rows: gemm.place.rows,
              out_cols: gemm.place.cols,
              out_step: gemm.place.step,
              out_dy: gemm.place.dy,
              out_dx: gemm.place.dx,
              has_bias: bias ? 1 : 0,
            },
            ...xBindings,
            w: packed.binding(),
            bias: (bias ?? packed).binding(),
            out: o.t.binding(),
          },
          [grid[0], grid[1], b - a],
        );
      }
      a = b;
    }
  });
}

/** The implicit GEMM of a conv2d. */
export function conv2dGemm(g: ConvGeometry): ConvGemm {
  return {
    op: 'conv2d',
    ...g,
    kernel: [1, g.kh, g.kw],
    padTop: g.pad[0],
    padLeft: g.pad[2],
    padT: 0,
    frames: 1,
    wBase: 0,
    place: { rows: g.outH, cols: g.outW, step: 1, dy: 0, dx: 0 },
  };
}

/** A variant in words (benchmark tables). */
export function describeVariant(v: ConvVariant): string {
  if (v.SUBGROUP) return `implicit GEMM, subgroup broadcast, ${v.RG} pixel rows x ${4 * v.CG} ch per lane, WG ${v.WG}`;
  const tile = `${4 * v.NQ}ch x ${4 * v.PV}px tile, ${v.U} ch/update, WG ${v.WG}`;
  return v.STAGE ? `implicit GEMM, weights staged ${v.CC} ch at a time, ${tile}` : `implicit GEMM, register ${tile}`;
}

/**
 * Conv2d of x [N,C,H,W] with weight [O,C,kh,kw] (or that kernel packed once)
 * and optional bias [O]; padding [top, bottom, left, right] or one number.
 */
export function conv2d(x: Tensor, weight: ConvWeight, bias?: Tensor, options: Conv2dOptions = {}): Tensor {
  const g = convGeometry(x.shape, weight.shape, options);
  checkConvOperands('conv2d', x, weight, bias, g.outChannels);
  const { algorithm } = options;
  if (algorithm !== undefined && algorithm !== 'direct' && algorithm !== 'winograd') throw new ShapeError('conv2d', `algorithm must be 'direct' or 'winograd', got ${String(algorithm)}`);
  if (algorithm === 'winograd' && !winogradApplies(g)) throw new ShapeError('conv2d', `algorithm 'winograd' needs a 3x3 kernel, stride 1 and padding 1, got ${g.kh}x${g.kw}, stride ${g.stride}, padding [${g.pad.join(', ')}]`);
  const winograd = algorithm === 'winograd' || (algorithm === undefined && options.variant === undefined && winogradPays(x.gpu, g));
  const out = Tensor.empty(x.gpu, [g.batch, g.outChannels, g.outH, g.outW]);
  tidy(() => {
    const packed = packedFor('conv2d', weight, g.outChannels, g.inChannels, g.kh * g.kw, packConvWeight);
    if (winograd) conv2dWinograd(x, packed, bias, out, g);
    else dispatchConvGemm(x, packed, bias, out, [conv2dGemm(g)], options.variant);
  });
  return out;
}

/**
 * ConvTranspose2d with kernel 2, stride 2: x [N,C,H,W], weight [C,O,2,2]
 * (PyTorch layout, or packed once), out [N,O,2H,2W]. Each tap (a, b) is a
 * 1×1 conv whose output lands on pixels (2y + a, 2x + b); the four share one
 * input copy.
 */
export function convTranspose2d(x: Tensor, weight: ConvWeight, bias?: Tensor, options: { variant?: Partial<ConvVariant> } = {}): Tensor {
  const op = 'convTranspose2d';
  checkOptionKeys(op, options, new Set(['variant']));
  const ws = weight.shape;
  if (x.rank !== 4 || ws.length !== 4 || ws[0] !== x.shape[1] || ws[2] !== 2 || ws[3] !== 2) {
    throw new ShapeError(op, `needs x [N,C,H,W] and weight [C,O,2,2], got ${shapeString(x.shape)} and ${shapeString(ws)}`);
  }
  const [n, c, h, w] = x.shape;
  const o = ws[1];
  checkConvOperands(op, x, weight, bias, o);
  const out = Tensor.empty(x.gpu, [n, o, 2 * h, 2 * w]);
  tidy(() => {
    const packed = packedFor(op, weight, o, c, 4, packConvTransposeWeight);
    const taps = [0, 1, 2, 3].map(
      (tap): ConvGemm => ({
        op,
        batch: n,
        inChannels: c,
        inH: h,
        inW: w,
        outChannels: o,
        outH: h,
        outW: w,
        kernel: [1, 1, 1],
        stride: 1,
        padTop: 0,
        padLeft: 0,
        padT: 0,
        frames: 1,
        wBase: (tap * c * packed.shape[2]) / 4,
        place: { rows: 2 * h, cols: 2 * w, step: 2, dy: tap >> 1, dx: tap & 1 },
      }),
    );
    dispatchConvGemm(x, packed, bias, out, taps, options.variant);
  });
  return out;
}

/** The naive kernel's geometry: an implicit GEMM's, without its weight packing and output placement. */
export type NaiveConv = Omit<ConvGemm, 'op' | 'wBase' | 'place'>;

/** The conv geometry's members of the conv2d.wgsl and conv3d.wgsl Params uniforms. */
function geometryUniforms(g: NaiveConv): Record<string, number> {
  const [kt, kh, kw] = g.kernel;
  return {
    in_c: g.inChannels,
    in_h: g.inH,
    in_w: g.inW,
    out_c: g.outChannels,
    out_h: g.outH,
    out_w: g.outW,
    k_t: kt,
    k_h: kh,
    k_w: kw,
    stride: g.stride,
    pad_top: g.padTop,
    pad_left: g.padLeft,
    pad_t: g.padT,
    frames: g.frames,
  };
}

/** The naive kernel (kernels/conv3d.wgsl): one output per invocation, PyTorch weight layout. Benchmarks' baseline. */
export function naiveConv(x: Tensor, weight: Tensor, bias: Tensor | undefined, g: NaiveConv): Tensor {
  const out = Tensor.empty(x.gpu, [g.batch, g.outChannels, g.outH, g.outW]);
  const WG = 64;
  x.gpu.dispatch(
    { kernel: 'conv3d', entry: 'naive', overrides: { WG, W_F16: weight.dtype === 'f16' } },
    {
      params: {
        batch: g.batch,
        ...geometryUniforms(g),
        has_bias: bias ? 1 : 0,
      },
      x: x.binding(),
      w: weight.binding(),
      bias: (bias ?? weight).binding(),
      out: out.binding(),
    },
    flatGrid(out.size, WG),
  );
  return out;
}

/** conv2d by the naive kernel (same arguments). */
export function conv2dNaive(x: Tensor, weight: Tensor, bias?: Tensor, options: Conv2dOptions = {}): Tensor {
  const g = convGeometry(x.shape, weight.shape, options);
  checkConvOperands('conv2d', x, weight, bias, g.outChannels);
  return naiveConv(x, weight, bias, { ...g, kernel: [1, g.kh, g.kw], padTop: g.pad[0], padLeft: g.pad[2], padT: 0, frames: 1 });
}
