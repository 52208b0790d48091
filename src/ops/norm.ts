// Normalisation ops (kernels/norm.wgsl): GroupNorm with the epilogues the
// models fuse into it (affine, ConditionalGroupNorm's scale/shift, SiLU),
// MoVQ's SpatialNorm, LayerNorm and T5's RMS norm. Statistics are f32.
//
// An image larger than one storage binding can be normalised as horizontal
// bands (tensors [N, C, rows, ...] whose rows make up the image):
// groupNormBandStats takes every band's statistics, then groupNorm or
// spatialNorm of each band with `bandStats` normalises it with the whole
// image's mean and variance.
import type { BufferRange } from '../gpu/gpu.ts';
import { ShapeError } from '../errors.ts';
import { Tensor, numel, shapeString } from '../tensor/tensor.ts';
import { flatGrid } from './grid.ts';

// One workgroup per group or row. On lavapipe (one CPU thread per workgroup)
// 64 invocations measured fastest: 128 and 256 took about twice the time.
const WG = 64;

export interface GroupNormOptions {
  groups: number;
  eps: number;
  /** Affine weight and bias, [C] each; both or neither. */
  weight?: Tensor;
  bias?: Tensor;
  /**
   * ConditionalGroupNorm's context projection [N or 1, 2C]: scale (first C)
   * then shift, applied as norm(x)·(scale + 1) + shift. One row broadcasts
   * to every sample; callers repeat rows for any other grouping.
   */
  scaleShift?: Tensor;
  /** SiLU after everything else. */
  silu?: boolean;
  /**
   * x is one band of an image: normalise with the image's statistics from
   * groupNormBandStats (of all its bands) instead of x's own.
   */
  bandStats?: Tensor;
}

export interface SpatialNormOptions {
  groups: number;
  eps: number;
  weight: Tensor;
  bias: Tensor;
  silu?: boolean;
  /** As GroupNormOptions.bandStats. */
  bandStats?: Tensor;
  /**
   * x is rows [firstRow, firstRow + x's H) of an image of `height` rows, and
   * zqY/zqB are given for the whole image (default: x is the whole image).
   */
  band?: { firstRow: number; height: number };
}

function requireF32(op: string, ts: Record<string, Tensor | undefined>): void {
  for (const [name, t] of Object.entries(ts)) {
    if (t && t.dtype !== 'f32') throw new ShapeError(op, `${name} must be f32, got ${t.dtype} ${shapeString(t.shape)}`);
  }
}

function requireShape(op: string, name: string, t: Tensor, shape: readonly number[]): void {
  if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(op, `${name} must be ${shapeString(shape)}, got ${shapeString(t.shape)}`);
  }
}

/** Per-sample inputs may have N rows or one (broadcast): the row stride to use. */
function sampleStride(op: string, name: string, t: Tensor, samples: number): number {
  if (t.shape[0] === samples) return t.size / samples;
  if (t.shape[0] === 1) return 0;
  throw new ShapeError(op, `${name} ${shapeString(t.shape)} needs ${samples} rows or 1`);
}

/**
 * Runs fn on each dim-0 piece of x and out (one piece unless x is larger than
 * a storage binding), with the index of the piece's first row.
 */
function eachPart(op: string, x: Tensor, out: Tensor, fn: (x: Tensor, out: Tensor, firstRow: number) => void): void {
  if (x.size === 0) return; // nothing to normalise, nor a buffer to bind
  const xs = x.parts();
  const outs = out.parts();
  try {
    let first = 0;
    for (let i = 0; i < xs.length; i++) {
      if (outs[i]?.shape[0] !== xs[i].shape[0]) throw new ShapeError(op, `input ${shapeString(x.shape)} is split unlike its output; make it contiguous first`);
      fn(xs[i], outs[i], first);
      first += xs[i].shape[0];
    }
  } finally {
    for (const t of [...xs, ...outs]) t.dispose();
  }
}

/**
 * The binding of the kernel's vec4 view of t (x4, weight4, bias4): t itself
 * with VEC4; otherwise the view is unread, but an array<vec4> binding still
 * needs 16 bytes: the start of x's buffer (activations are pool buffers of
 * at least 256 bytes).
 */
function vec4View(t: Tensor, vec4: boolean, x: Tensor): BufferRange {
  return vec4 ? t.binding() : { buffer: x.binding().buffer, offset: 0, size: 16 };
}

/** out is written as vec4s: its binding rounds up to whole vec4s (op outputs are pool buffers, with room). */
function outBinding(out: Tensor): BufferRange {
  const b = out.binding();
  return { ...b, size: Math.ceil(out.byteLength / 16) * 16 };
}

/** kernels/norm.wgsl's GroupParams (a type, not an interface: a uniform binding is a plain record). */
export type GroupParams = {
  samples: number;
  first_sample: number;
  channels: number;
  groups: number;
  hw: number;
  eps: number;
  ss_stride: number;
  width: number;
  zq_height: number;
  zq_width: number;
  scale_h: number;
  scale_w: number;
  zq_stride: number;
  row0: number;
  band: number;
  bands: number;
};

/** GroupParams for samples × channels × hw in groups; the epilogue and band members default to off (one band, no zq). */
export function groupParams(p: Pick<GroupParams, 'samples' | 'channels' | 'groups' | 'hw'> & Partial<GroupParams>): GroupParams {
  return { first_sample: 0, eps: 0, ss_stride: 0, width: 1, zq_height: 1, zq_width: 1, scale_h: 1, scale_w: 1, zq_stride: 0, row0: 0, band: 0, bands: 1, ...p };
}

interface GroupEpilogue {
  weight?: Tensor;
  bias?: Tensor;
  scaleShift?: Tensor;
  modY?: Tensor;
  modB?: Tensor;
  silu?: boolean;
  bandStats?: Tensor;
  band?: { firstRow: number; height: number };
}

/** One group_norm dispatch per part of x; spatial modulation when modY/modB are given. */
function groupNormDispatch(op: string, x: Tensor, groups: number, eps: number, e: GroupEpilogue): Tensor {
  const [samples, channels] = x.shape;
  const spatial = e.modY !== undefined;
  const ssStride = e.scaleShift ? sampleStride(op, 'scaleShift', e.scaleShift, samples) : 0;
  const zqStride = e.modY ? sampleStride(op, 'zqY', e.modY, samples) : 0;
  const hw = numel(x.shape.slice(2));
  const [rows, width] = spatial ? x.shape.slice(2) : [1, 1];
  const { firstRow, height } = e.band ?? { firstRow: 0, height: rows };
  const [zqHeight, zqWidth] = e.modY ? e.modY.shape.slice(2) : [1, 1];
  // vec4 steps stay inside a channel and, for the spatial modulation, a row.
  const vec4 = hw % 4 === 0 && (!spatial || width % 4 === 0);
  const out = Tensor.empty(x.gpu, x.shape);
  eachPart(op, x, out, (xp, outp, firstSample) => {
    const dummy = xp.binding(); // stands in for inputs whose override is off
    xp.gpu.dispatch(
      {
        kernel: 'norm',
        entry: 'group_norm',
        overrides: {
          WG,
          VEC4: vec4,
          AFFINE: e.weight !== undefined,
          SCALE_SHIFT: e.scaleShift !== undefined,
          SPATIAL: spatial,
          SILU: e.silu ?? false,
          BAND_STATS: e.bandStats !== undefined,
        },
      },
      {
        gn: groupParams({
          samples: xp.shape[0],
          first_sample: firstSample,
          channels,
          groups,
          hw,
          eps,
          ss_stride: ssStride,
          width,
          zq_height: zqHeight,
          zq_width: zqWidth,
          // torch's nearest computes the scale in f32.
          scale_h: Math.fround(zqHeight / height),
          scale_w: Math.fround(zqWidth / width),
          zq_stride: zqStride,
          row0: firstRow,
          bands: e.bandStats?.shape[2] ?? 1,
        }),
        x: dummy,
        x4: vec4View(xp, vec4, xp),
        weight: e.weight?.binding() ?? dummy,
        bias: e.bias?.binding() ?? dummy,
        scale_shift: e.scaleShift?.binding() ?? dummy,
        mod_y: e.modY?.binding() ?? dummy,
        mod_b: e.modB?.binding() ?? dummy,
        band_stats: e.bandStats?.binding() ?? vec4View(xp, false, xp),
        out: outBinding(outp),
      },
      flatGrid(xp.shape[0] * groups, 1),
    );
  });
  return out;
}

/** bandStats must be groupNormBandStats' result for x's samples and groups. */
function checkBandStats(op: string, x: Tensor, groups: number, bandStats: Tensor | undefined): void {
  if (!bandStats) return;
  const [n, g, bands, four] = bandStats.shape;
  if (bandStats.dtype !== 'f32' || bandStats.rank !== 4 || n !== x.shape[0] || g !== groups || bands < 1 || four !== 4) {
    throw new ShapeError(op, `bandStats must be groupNormBandStats' [${x.shape[0]}, ${groups}, bands, 4] for x ${shapeString(x.shape)}, got ${bandStats.dtype} ${shapeString(bandStats.shape)}`);
  }
}

/**
 * The statistics of a GroupNorm over an image held as bands: tensors
 * [N, C, rows_b, ...rest] (the same N, C and rest; rows_b > 0), the image
 * being their concatenation along dim 2. Returns each band's moments per
 * (sample, group), [N, groups, bands, 4], for groupNorm / spatialNorm of
 * each band with `bandStats`. Band b's contribution is computed as the fused
 * norm computes a whole group, and the bands are merged with Chan's formula
 * relative to the image's first element of the group (kernels/norm.wgsl), so
 * the result equals the unbanded norm up to f32 summation order.
 */
export function groupNormBandStats(bands: readonly Tensor[], groups: number): Tensor {
  const op = 'groupNormBandStats';
  if (bands.length === 0) throw new ShapeError(op, 'needs at least one band');
  const first = bands[0];
  requireF32(op, Object.fromEntries(bands.map((b, i) => [`band ${i}`, b])));
  checkGroups(op, first, groups);
  if (first.rank < 3) throw new ShapeError(op, `bands must be [N, C, rows, ...], got ${shapeString(first.shape)}`);
  for (const [i, b] of bands.entries()) {
    if (b.rank !== first.rank || b.shape[2] < 1 || b.shape.some((d, k) => k !== 2 && d !== first.shape[k])) {
      throw new ShapeError(op, `band ${i} ${shapeString(b.shape)} does not match band 0 ${shapeString(first.shape)} outside dim 2, or is empty`);
    }
  }
  const [samples, channels] = first.shape;
  const stats = Tensor.empty(first.gpu, [samples, groups, bands.length, 4]);
  if (samples === 0) return stats;
  bands.forEach((b, band) => {
    const hw = numel(b.shape.slice(2));
    const vec4 = hw % 4 === 0;
    // A band larger than one binding is taken part by part (dim 0: samples).
    let firstSample = 0;
    for (const bp of b.parts()) {
      bp.gpu.dispatch(
        { kernel: 'norm', entry: 'group_stats', overrides: { WG, VEC4: vec4 } },
        {
          gn: groupParams({ samples: bp.shape[0], first_sample: firstSample, channels, groups, hw, band, bands: bands.length }),
          x: bp.binding(),
          x4: vec4View(bp, vec4, bp),
          stats_out: stats.binding(),
        },
        flatGrid(bp.shape[0] * groups, 1),
      );
      firstSample += bp.shape[0];
      bp.dispose();
    }
  });
  return stats;
}

function checkGroups(op: string, x: Tensor, groups: number, weight?: Tensor, bias?: Tensor): void {
  if (x.rank < 2) throw new ShapeError(op, `x must be [N, C, ...spatial], got ${shapeString(x.shape)}`);
  const c = x.shape[1];
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) throw new ShapeError(op, `${c} channels do not split into ${groups} groups`);
  if ((weight === undefined) !== (bias === undefined)) throw new ShapeError(op, 'weight and bias go together');
  if (weight) requireShape(op, 'weight', weight, [c]);
  if (bias) requireShape(op, 'bias', bias, [c]);
}

/**
 * GroupNorm over x [N, C, ...spatial]: each sample's C/groups channels × all
 * spatial positions share one mean and variance (biased, as torch). Then the
 * optional affine, conditional scale/shift and SiLU, in that order.
 */
export function groupNorm(x: Tensor, options: GroupNormOptions): Tensor {
  const op = 'groupNorm';
  const { groups, eps, weight, bias, scaleShift, silu, bandStats } = options;
  requireF32(op, { x, weight, bias, scaleShift });
  checkGroups(op, x, groups, weight, bias);
  checkBandStats(op, x, groups, bandStats);
  if (scaleShift && (scaleShift.rank !== 2 || scaleShift.shape[1] !== 2 * x.shape[1])) {
    throw new ShapeError(op, `scaleShift must be [N or 1, ${2 * x.shape[1]}], got ${shapeString(scaleShift.shape)}`);
  }
  return groupNormDispatch(op, x, groups, eps, { weight, bias, scaleShift, silu, bandStats });
}

/**
 * MoVQ's SpatialNorm: groupNorm(x)·y + b, with y = conv_y(zq) and
 * b = conv_b(zq) [N or 1, C, h, w] given at zq's resolution (or at x's) and
 * read nearest-upsampled to x's H×W, so no upsampled copy is made. Nearest
 * is torch's: row floor(i·s) with s = h/H rounded to f32, which is
 * floor(i·h/H) for the integer ratios MoVQ uses. Optional SiLU after. A
 * band of an image (options.band) reads zq's rows for its own rows.
 */
export function spatialNorm(x: Tensor, zqY: Tensor, zqB: Tensor, options: SpatialNormOptions): Tensor {
  const op = 'spatialNorm';
  const { groups, eps, weight, bias, silu, bandStats, band } = options;
  requireF32(op, { x, zqY, zqB, weight, bias });
  if (x.rank !== 4) throw new ShapeError(op, `x must be [N, C, H, W], got ${shapeString(x.shape)}`);
  checkGroups(op, x, groups, weight, bias);
  checkBandStats(op, x, groups, bandStats);
  if (band && !(Number.isInteger(band.firstRow) && band.firstRow >= 0 && Number.isInteger(band.height) && band.firstRow + x.shape[2] <= band.height)) {
    throw new ShapeError(op, `band rows ${band.firstRow} + ${x.shape[2]} do not lie in an image of ${band.height} rows`);
  }
  if (zqY.rank !== 4 || zqY.shape[1] !== x.shape[1]) throw new ShapeError(op, `zqY must be [N or 1, ${x.shape[1]}, h, w], got ${shapeString(zqY.shape)}`);
  requireShape(op, 'zqB', zqB, zqY.shape);
  return groupNormDispatch(op, x, groups, eps, { weight, bias, modY: zqY, modB: zqB, silu, bandStats, band });
}

function rowNorm(op: string, x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number): Tensor {
  requireF32(op, { x, weight, bias });
  if (x.rank < 1) throw new ShapeError(op, 'x must have at least one dimension');
  const d = x.shape[x.rank - 1];
  requireShape(op, 'weight', weight, [d]);
  if (bias) requireShape(op, 'bias', bias, [d]);
  const out = Tensor.empty(x.gpu, x.shape);
  const vec4 = d % 4 === 0;
  eachPart(op, x, out, (xp, outp) => {
    const rows = xp.size / d;
    xp.gpu.dispatch(
      { kernel: 'norm', entry: 'row_norm', overrides: { WG, VEC4: vec4, RMS: bias === undefined } },
      {
        rp: { rows, d, eps },
        x: xp.binding(),
        x4: vec4View(xp, vec4, xp),
        weight: weight.binding(),
        weight4: vec4View(weight, vec4, xp),
        // RMS norm has no bias: weight stands in, unread.
        bias: (bias ?? weight).binding(),
        bias4: vec4View(bias ?? weight, vec4, xp),
        out: outBinding(outp),
      },
      flatGrid(rows, 1),
    );
  });
  return out;
}

/** LayerNorm over the last dim: (x − mean)/sqrt(var + eps)·weight + bias. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  return rowNorm('layerNorm', x, weight, bias, eps);
}

/** T5's RMS norm over the last dim: x/sqrt(mean(x²) + eps)·weight (no mean subtraction, no bias). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return rowNorm('rmsNorm', x, weight, undefined, eps);
}
