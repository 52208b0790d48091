// Fused attention (kernels/attention.wgsl). Inputs are token-major, as the
// linear projections produce them: [batch, tokens, heads·head_dim].
import { ShapeError } from '../errors.ts';
import { Tensor, shapeString } from '../tensor/tensor.ts';
import { flatGrid } from './grid.ts';

const WG = 64;

export interface AttentionOptions {
  heads: number;
  /** Score scale; default head_dim^-1/2 (T5 uses 1). */
  scale?: number;
  /** [kvBatch, Lk] i32, 0 = masked key (score −FLT_MAX, as upstream). */
  mask?: Tensor;
  /** Additive score bias [heads, Lq, Lk] (T5's relative positions). */
  bias?: Tensor;
}

interface Layout {
  problems: number;
  lq: number;
  lk: number;
  gInner: number;
  qOuter: number;
  qInner: number;
  qTok: number;
  kvOuter: number;
  kvInner: number;
  kvTok: number;
  kvDiv: number;
  height: number;
  width: number;
}

function headDim(op: string, channels: number, heads: number): number {
  if (!Number.isInteger(heads) || heads < 1 || channels % heads !== 0) throw new ShapeError(op, `${channels} channels do not split into ${heads} heads`);
  const d = channels / heads;
  if (d % 4 !== 0 || d > 256) throw new ShapeError(op, `head_dim ${d} must be a multiple of 4, at most 256`);
  return d;
}

function run(entry: 'main' | 'neighbourhood', q: Tensor, k: Tensor, v: Tensor, heads: number, d: number, l: Layout, scale: number, mask?: Tensor, bias?: Tensor): Tensor {
  for (const [name, t] of [['q', q], ['k', k], ['v', v], ['bias', bias]] as const) {
    if (t && t.dtype !== 'f32') throw new ShapeError('attention', `${name} must be f32, got ${t.dtype}`);
  }
  const out = Tensor.empty(q.gpu, q.shape);
  q.gpu.dispatch(
    { kernel: 'attention', entry, overrides: { WG } },
    {
      params: {
        problems: l.problems,
        heads,
        head_dim: d,
        lq: l.lq,
        lk: l.lk,
        g_inner: l.gInner,
        q_outer: l.qOuter,
        q_inner: l.qInner,
        q_tok: l.qTok,
        kv_outer: l.kvOuter,
        kv_inner: l.kvInner,
        kv_tok: l.kvTok,
        kv_div: l.kvDiv,
        has_mask: mask ? 1 : 0,
        has_bias: bias ? 1 : 0,
        scale,
        height: l.height,
        width: l.width,
      },
      q: q.binding(),
      k: k.binding(),
      v: v.binding(),
      // The neighbourhood entry has no mask or bias bindings.
      ...(entry === 'main' ? { mask: (mask ?? q).binding(), bias: (bias ?? q).binding() } : {}),
      out: out.binding(),
    },
    flatGrid(l.problems * heads * l.lq, WG),
  );
  return out;
}

/**
 * Attention of q [B, Lq, C] over k, v [Bkv, Lk, C] with B a multiple of Bkv
 * (each k/v row serves B/Bkv consecutive q rows). C = heads·head_dim.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  if (q.rank !== 3 || k.rank !== 3 || v.shape.join() !== k.shape.join() || k.shape[2] !== q.shape[2]) {
    throw new ShapeError('attention', `needs q [B,Lq,C], k and v [Bkv,Lk,C], got ${shapeString(q.shape)}, ${shapeString(k.shape)}, ${shapeString(v.shape)}`);
  }
  const [b, lq, c] = q.shape;
  const [bkv, lk] = k.shape;
  if (bkv < 1 || b % bkv !== 0) throw new ShapeError('attention', `${b} query rows are not a multiple of ${bkv} key rows`);
  const d = headDim('attention', c, o.heads);
  if (o.mask && (o.mask.dtype !== 'i32' || o.mask.size !== bkv * lk)) throw new ShapeError('attention', `mask must be i32 [${bkv}, ${lk}], got ${o.mask.dtype} ${shapeString(o.mask.shape)}`);
  if (o.bias && o.bias.size !== o.heads * lq * lk) throw new ShapeError('attention', `bias must be [${o.heads}, ${lq}, ${lk}], got ${shapeString(o.bias.shape)}`);
  const layout: Layout = { problems: b, lq, lk, gInner: 1, qOuter: lq * c, qInner: 0, qTok: c, kvOuter: lk * c, kvInner: 0, kvTok: c, kvDiv: b / bkv, height: 0, width: 0 };
  return run('main', q, k, v, o.heads, d, layout, o.scale ?? 1 / Math.sqrt(d), o.mask, o.bias);
}

function temporalLayout(op: string, q: Tensor, k: Tensor, v: Tensor, heads: number, frames: number): { layout: Layout; d: number } {
  if (q.rank !== 3 || q.shape.join() !== k.shape.join() || q.shape.join() !== v.shape.join()) {
    throw new ShapeError(op, `needs q, k, v of one shape [B·T, pixels, C], got ${shapeString(q.shape)}, ${shapeString(k.shape)}, ${shapeString(v.shape)}`);
  }
  const [n, pixels, c] = q.shape;
  if (!Number.isInteger(frames) || frames < 1 || n % frames !== 0) throw new ShapeError(op, `${n} rows are not whole videos of ${frames} frames`);
  const d = headDim(op, c, heads);
  const videoStride = frames * pixels * c;
  const layout: Layout = {
    problems: (n / frames) * pixels,
    lq: frames,
    lk: frames,
    gInner: pixels,
    qOuter: videoStride,
    qInner: c,
    qTok: pixels * c,
    kvOuter: videoStride,
    kvInner: c,
    kvTok: pixels * c,
    kvDiv: 1,
    height: 0,
    width: 0,
  };
  return { layout, d };
}

/** Attention across the T frames of each video at every pixel, on [B·T, pixels, C]. */
export function temporalAttention(q: Tensor, k: Tensor, v: Tensor, o: { heads: number; frames: number; scale?: number }): Tensor {
  const { layout, d } = temporalLayout('temporalAttention', q, k, v, o.heads, o.frames);
  return run('main', q, k, v, o.heads, d, layout, o.scale ?? 1 / Math.sqrt(d));
}

/**
 * 3-D temporal attention on [B·T, H·W, C]: the query at (t, y, x) attends to
 * every frame t' at the 3×3 neighbourhood of (y, x) inside the frame.
 */
export function temporalAttention3d(q: Tensor, k: Tensor, v: Tensor, o: { heads: number; frames: number; height: number; width: number; scale?: number }): Tensor {
  const { layout, d } = temporalLayout('temporalAttention3d', q, k, v, o.heads, o.frames);
  if (o.height * o.width !== q.shape[1]) throw new ShapeError('temporalAttention3d', `${q.shape[1]} pixels are not ${o.height}×${o.width}`);
  return run('neighbourhood', q, k, v, o.heads, d, { ...layout, height: o.height, width: o.width }, o.scale ?? 1 / Math.sqrt(d));
}
