// Fused attention (kernels/attention.wgsl): softmax(scale·q·kᵀ + bias,
// masked)·v per head, streamed with an online softmax. q, k and v come as the
// linear projections make them, token-major [batch, tokens, heads·head_dim],
// and the output has q's layout.
//
// How each op maps (batch n, head h, token i) onto the kernel's strided
// addressing (all in vec4 units, C = heads·head_dim, D = head_dim):
//   attention          [B, Lq, C] over [Bkv, Lk, C]: n = b, inner = 1,
//                      q_outer = Lq·C, q_token = C, q_head = D (k/v alike);
//                      k/v row n / (B / Bkv) serves each q row n.
//   temporalAttention  [B·T, P, C] with frames as tokens: n = b·P + pixel,
//                      inner = P, outer stride T·P·C (one video), inner
//                      stride C (one pixel), token stride P·C (one frame):
//                      the frames of a pixel are read in place, no transpose.
//   temporalAttention3d  the same n and strides; the kernel walks 9 key
//                      segments, the 3×3 pixel neighbourhood (y, x from
//                      pixel = y·W + x), skipping neighbours outside the frame.
import { ShapeError } from '../errors.ts';
import type { Gpu, OverrideValues } from '../gpu/gpu.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { flatGrid } from './grid.ts';

export const ATTENTION_VARIANTS = ['subgroup', 'tiled', 'direct', 'naive'] as const;
export type AttentionVariant = (typeof ATTENTION_VARIANTS)[number];

export interface AttentionOptions {
  heads: number;
  /** Score scale; default head_dim^-1/2 (T5 uses 1). */
  scale?: number;
  /** [Bkv, Lk] i32 or u32, 0 = masked key (score −FLT_MAX before the softmax, as upstream). */
  mask?: Tensor;
  /** Additive score bias [heads, Lq, Lk] (T5's relative positions). */
  bias?: Tensor;
  /** Forces a kernel (tests, benchmarks); default selectAttentionVariant. */
  variant?: AttentionVariant;
}

export interface TemporalOptions {
  heads: number;
  frames: number;
  scale?: number;
  variant?: AttentionVariant;
}

export interface Temporal3dOptions extends TemporalOptions {
  height: number;
  width: number;
}

/** Where token i of head h of problem n lives (vec4 units), as kernels/attention.wgsl reads it. */
interface Geometry {
  batch: number;
  lq: number;
  lk: number;
  inner: number;
  qOuter: number;
  qInner: number;
  qToken: number;
  kvOuter: number;
  kvInner: number;
  kvToken: number;
  kvDiv: number;
  neighbourhood: boolean;
  width: number;
  height: number;
}

/** The kernel's register tile: 4 sub-rows of 64 dims per invocation. */
const SUB_ROWS = 4;
const SUB_DIMS = 64;
export const MAX_FUSED_HEAD_DIM = SUB_ROWS * SUB_DIMS;
// GPUs: one query row per invocation, keys staged 16 at a time.
const TILED = { WG: 64, KB: 16 };
// CPU adapters without subgroups: every invocation reads keys itself.
const DIRECT = { WG: 64, KB: 16 };
const NAIVE_WG = 64;

interface AdapterInfo {
  software: boolean;
  /** The subgroup size when the adapter has subgroups of one fixed size the kernel supports. */
  subgroupSize: number | null;
}

const adapterInfos = new WeakMap<Gpu, AdapterInfo>();

function adapterInfo(gpu: Gpu): AdapterInfo {
  let info = adapterInfos.get(gpu);
  if (!info) {
    const ai = (gpu.device as GPUDevice & { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
    const s = ai?.subgroupMinSize;
    // The shuffle variant scores a block of one key per lane in 16 slots.
    const fixed = gpu.info.features.includes('subgroups') && s !== undefined && s === ai?.subgroupMaxSize && [4, 8, 16].includes(s);
    info = { software: gpu.info.software, subgroupSize: fixed ? s : null };
    adapterInfos.set(gpu, info);
  }
  return info;
}

function envVariant(): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.KANDINSKY_ATTENTION_VARIANT || undefined;
}

/**
 * The kernel for this adapter and head size. `requested` (default: env
 * KANDINSKY_ATTENTION_VARIANT) forces one; heads past MAX_FUSED_HEAD_DIM only
 * run on the naive kernel.
 */
export function selectAttentionVariant(gpu: Gpu, headDim: number, requested = envVariant()): AttentionVariant {
  const info = adapterInfo(gpu);
  if (requested !== undefined) {
    if (!(ATTENTION_VARIANTS as readonly string[]).includes(requested)) {
      throw new Error(`KANDINSKY_ATTENTION_VARIANT=${requested}: expected one of ${ATTENTION_VARIANTS.join(', ')}`);
    }
    if (requested === 'subgroup' && info.subgroupSize === null) throw new Error('attention variant subgroup needs subgroups of one fixed size (4, 8 or 16)');
    if (requested !== 'naive' && headDim > MAX_FUSED_HEAD_DIM) throw new Error(`attention variant ${requested} holds head_dim ≤ ${MAX_FUSED_HEAD_DIM}, got ${headDim}`);
    return requested as AttentionVariant;
  }
  if (headDim > MAX_FUSED_HEAD_DIM) return 'naive';
  // Deno 2.9's WGSL compiler (Naga 29) panics translating the fused entry to
  // SPIR-V ("Expression [130] is not cached", the whole process aborts); the
  // naive entry compiles there.
  if (gpu.info.runtime === 'deno') return 'naive';
  if (!info.software) return 'tiled';
  return info.subgroupSize !== null ? 'subgroup' : 'direct';
}

function headDim(op: string, channels: number, heads: number): number {
  if (!Number.isInteger(heads) || heads < 1 || channels % heads !== 0) throw new ShapeError(op, `${channels} channels do not split into ${heads} heads`);
  const d = channels / heads;
  if (d % 4 !== 0) throw new ShapeError(op, `head_dim ${d} must be a multiple of 4`);
  return d;
}

function requireF32(op: string, ts: Record<string, Tensor | undefined>): void {
  for (const [name, t] of Object.entries(ts)) {
    if (t && t.dtype !== 'f32') throw new ShapeError(op, `${name} must be f32, got ${t.dtype} ${shapeString(t.shape)}`);
  }
}

function run(q: Tensor, k: Tensor, v: Tensor, heads: number, d: number, geo: Geometry, scale: number, variant: AttentionVariant | undefined, mask?: Tensor, bias?: Tensor): Tensor {
  const gpu = q.gpu;
  const out = Tensor.empty(gpu, q.shape);
  if (q.size === 0) return out;
  const d4 = d / 4;
  const chosen = variant ?? selectAttentionVariant(gpu, d);
  const common = { D4: d4, MASK: mask !== undefined, BIAS: bias !== undefined, NEIGHBOURHOOD: geo.neighbourhood };
  // Sub-rows per query row, and rows per invocation: 1, 2 or 4, no more than
  // the queries need (each value is another pipeline to compile).
  const s = Math.ceil(d / SUB_DIMS);
  const rowsFor = (wg: number) => Math.min(Math.floor(SUB_ROWS / s), 2 ** Math.ceil(Math.log2(Math.ceil(geo.lq / wg))));
  let overrides: OverrideValues;
  let rows: number;
  switch (chosen) {
    case 'subgroup': {
      const sg = adapterInfo(gpu).subgroupSize;
      if (sg === null) throw new Error('attention variant subgroup needs subgroups of one fixed size (4, 8 or 16)');
      const r = rowsFor(sg);
      overrides = { ...common, S: s, R: r, WG: sg, KB: sg, SHUFFLE: true };
      rows = sg * r;
      break;
    }
    case 'tiled': {
      // As many keys per stage as fit beside each other in workgroup memory.
      const fit = Math.floor(gpu.device.limits.maxComputeWorkgroupStorageSize / (2 * 16 * d4));
      const kb = Math.max(1, Math.min(TILED.KB, fit));
      overrides = { ...common, S: s, R: 1, WG: TILED.WG, KB: kb, TILE_KV: true, TILE_KEYS: kb };
      rows = TILED.WG;
      break;
    }
    case 'direct': {
      const r = rowsFor(DIRECT.WG);
      overrides = { ...common, S: s, R: r, WG: DIRECT.WG, KB: DIRECT.KB };
      rows = DIRECT.WG * r;
      break;
    }
    case 'naive':
      overrides = { ...common, WG: NAIVE_WG };
      rows = NAIVE_WG;
      break;
  }
  const groups = Math.ceil(geo.lq / rows) * geo.batch * heads;
  // q·kᵀ and p·v; a neighbourhood query sees up to 9 segments of lk keys.
  gpu.profile?.flops('attention', 4 * geo.batch * heads * geo.lq * (geo.neighbourhood ? 9 : 1) * geo.lk * d);
  gpu.dispatch(
    { kernel: 'attention', entry: chosen === 'naive' ? 'naive' : 'main', overrides },
    {
      params: {
        batch: geo.batch,
        lq: geo.lq,
        lk: geo.lk,
        heads,
        d4,
        inner: geo.inner,
        q_outer: geo.qOuter,
        q_inner: geo.qInner,
        q_token: geo.qToken,
        q_head: d4,
        kv_outer: geo.kvOuter,
        kv_inner: geo.kvInner,
        kv_token: geo.kvToken,
        kv_head: d4,
        kv_div: geo.kvDiv,
        mask_stride: geo.lk,
        width: geo.width,
        height: geo.height,
        scale,
      },
      q: q.binding(),
      k: k.binding(),
      v: v.binding(),
      // Without a mask or bias the kernel never reads them; q fills the slot.
      mask: (mask ?? q).binding(),
      bias: (bias ?? q).binding(),
      out: out.binding(),
    },
    flatGrid(groups, 1),
  );
  return out;
}

/**
 * Multi-head attention of q [B, Lq, C] over k, v [Bkv, Lk, C], C =
 * heads·head_dim, B a multiple of Bkv (k/v row b serves q rows b·B/Bkv ..
 * (b+1)·B/Bkv − 1, e.g. one text context for all frames of a video).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  const op = 'attention';
  requireF32(op, { q, k, v, bias: o.bias });
  if (q.rank !== 3 || k.rank !== 3 || v.shape.join() !== k.shape.join() || k.shape[2] !== q.shape[2]) {
    throw new ShapeError(op, `needs q [B, Lq, C], k and v [Bkv, Lk, C], got ${shapeString(q.shape)}, ${shapeString(k.shape)}, ${shapeString(v.shape)}`);
  }
  const [b, lq, c] = q.shape;
  const [bkv, lk] = k.shape;
  if (bkv < 1 || b % bkv !== 0) throw new ShapeError(op, `${b} query rows are not a multiple of ${bkv} key rows`);
  if (lk < 1) throw new ShapeError(op, 'needs at least one key');
  const d = headDim(op, c, o.heads);
  const { mask, bias } = o;
  if (mask && ((mask.dtype !== 'i32' && mask.dtype !== 'u32') || mask.rank !== 2 || mask.shape[0] !== bkv || mask.shape[1] !== lk)) {
    throw new ShapeError(op, `mask must be i32 or u32 [${bkv}, ${lk}], got ${mask.dtype} ${shapeString(mask.shape)}`);
  }
  if (bias && (bias.rank !== 3 || bias.shape[0] !== o.heads || bias.shape[1] !== lq || bias.shape[2] !== lk)) {
    throw new ShapeError(op, `bias must be [${o.heads}, ${lq}, ${lk}], got ${shapeString(bias.shape)}`);
  }
  const c4 = c / 4;
  const geo: Geometry = {
    batch: b,
    lq,
    lk,
    inner: 1,
    qOuter: lq * c4,
    qInner: 0,
    qToken: c4,
    kvOuter: lk * c4,
    kvInner: 0,
    kvToken: c4,
    kvDiv: b / bkv,
    neighbourhood: false,
    width: 1,
    height: 1,
  };
  return run(q, k, v, o.heads, d, geo, o.scale ?? 1 / Math.sqrt(d), o.variant, mask, bias);
}

function temporalGeometry(op: string, q: Tensor, k: Tensor, v: Tensor, heads: number, frames: number): { geo: Geometry; d: number } {
  requireF32(op, { q, k, v });
  if (q.rank !== 3 || q.shape.join() !== k.shape.join() || q.shape.join() !== v.shape.join()) {
    throw new ShapeError(op, `needs q, k, v of one shape [B·T, pixels, C], got ${shapeString(q.shape)}, ${shapeString(k.shape)}, ${shapeString(v.shape)}`);
  }
  const [n, pixels, c] = q.shape;
  if (!Number.isInteger(frames) || frames < 1 || n % frames !== 0) throw new ShapeError(op, `${n} rows are not whole videos of ${frames} frames`);
  const d = headDim(op, c, heads);
  const c4 = c / 4;
  const video = frames * pixels * c4;
  const geo: Geometry = {
    batch: (n / frames) * pixels,
    lq: frames,
    lk: frames,
    inner: pixels,
    qOuter: video,
    qInner: c4,
    qToken: pixels * c4,
    kvOuter: video,
    kvInner: c4,
    kvToken: pixels * c4,
    kvDiv: 1,
    neighbourhood: false,
    width: 1,
    height: 1,
  };
  return { geo, d };
}

/** Attention across the T frames of each video at every pixel and head, on [B·T, pixels, C]. */
export function temporalAttention(q: Tensor, k: Tensor, v: Tensor, o: TemporalOptions): Tensor {
  const op = 'temporalAttention';
  const { geo, d } = temporalGeometry(op, q, k, v, o.heads, o.frames);
  return run(q, k, v, o.heads, d, geo, o.scale ?? 1 / Math.sqrt(d), o.variant);
}

/**
 * 3-D temporal attention (spec §6, PROPOSED) on [B·T, H·W, C]: the query at
 * (t, y, x) attends to every frame t' at the 3×3 neighbourhood of (y, x),
 * neighbours outside the frame left out (T·9 keys inside, fewer at borders).
 */
export function temporalAttention3d(q: Tensor, k: Tensor, v: Tensor, o: Temporal3dOptions): Tensor {
  const op = 'temporalAttention3d';
  const { geo, d } = temporalGeometry(op, q, k, v, o.heads, o.frames);
  if (!Number.isInteger(o.height) || !Number.isInteger(o.width) || o.height * o.width !== q.shape[1]) {
    throw new ShapeError(op, `${q.shape[1]} pixels are not ${o.height}×${o.width}`);
  }
  return run(q, k, v, o.heads, d, { ...geo, neighbourhood: true, width: o.width, height: o.height }, o.scale ?? 1 / Math.sqrt(d), o.variant);
}
