// The T5 encoder (spec §7; Flan-UL2 in the real pipeline), configured
// entirely from a Hugging Face config.json. Per layer: RMS norm → self-
// attention without score scaling, with the bidirectional relative-position
// bias of block 0 (computed once, reused by every layer) and padding keys
// masked → residual; RMS norm → (gated) feed-forward → residual; then the
// final RMS norm. No biases anywhere.
//
// Two ways to run it: `loadT5Encoder` + `forward` keeps every weight on the
// device; `encodeStreaming` loads one block at a time from the checkpoint,
// runs it and frees it, so the 8.6B-parameter Flan-UL2 encoder (17 GB in
// f16) runs with about one layer (0.5 GB f16) plus the embedding resident.
import type { Gpu } from '../../gpu/gpu.ts';
import { FormatError, ShapeError } from '../../errors.ts';
import type { Checkpoint } from '../../io/checkpoint.ts';
import { type FolderLike, asFolder, hasFile } from '../../io/folder.ts';
import { openCheckpointIn } from '../../io/open.ts';
import { type LoadOptions, type Param, WeightBuilder, checkWeights, loadWeights, releaseWeights } from '../../nn/weights.ts';
import { attention } from '../../ops/attention.ts';
import { add, gelu, geluTanh, mul, relu, silu } from '../../ops/elementwise.ts';
import { embedding, permute } from '../../ops/layout.ts';
import { linear } from '../../ops/matmul.ts';
import { rmsNorm } from '../../ops/norm.ts';
import { tidy } from '../../tensor/scope.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { type FeedForwardKind, type T5Config, feedForwardKind } from './config.ts';

/** The keys a T5 checkpoint may hold for the shared embedding (tied in HF checkpoints). */
export const EMBEDDING_KEYS = ['shared.weight', 'encoder.embed_tokens.weight'] as const;
export type EmbeddingKey = (typeof EMBEDDING_KEYS)[number];

// ---------------------------------------------------------------------------
// Relative-position buckets, on the host
// ---------------------------------------------------------------------------

/**
 * T5's bidirectional bucket of one relative position (key − query): half the
 * buckets per sign, positive offsets in the upper half; |offset| below a
 * quarter of the buckets is its own bucket; larger ones are log-spaced up to
 * max_distance, truncated to an integer and capped at the half's last bucket.
 * The log term is evaluated step by step in f32, as the reference does in
 * torch f32, so the truncation lands on the same side at exact boundaries
 * (e.g. offset 16 → 8 + log(2)/log(16)·8 = 10 exactly).
 */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const half = Math.floor(numBuckets / 2);
  const maxExact = Math.floor(half / 2);
  const base = relative > 0 ? half : 0;
  const n = Math.abs(relative);
  if (n < maxExact) return base + n;
  const f = Math.fround;
  const ratio = f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f(ratio * (half - maxExact)));
  return base + Math.min(large, half - 1);
}

/** Buckets [Lq·Lk] (row = query) for query position i and key position j: bucket(j − i). */
export function relativePositionBuckets(queryLength: number, keyLength: number, numBuckets: number, maxDistance: number): Int32Array {
  const byOffset = new Map<number, number>();
  const out = new Int32Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) {
    for (let j = 0; j < keyLength; j++) {
      const rel = j - i;
      let b = byOffset.get(rel);
      if (b === undefined) byOffset.set(rel, (b = relativePositionBucket(rel, numBuckets, maxDistance)));
      out[i * keyLength + j] = b;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The modules
// ---------------------------------------------------------------------------

class SelfAttention {
  readonly q: Param;
  readonly k: Param;
  readonly v: Param;
  readonly o: Param;
  /** Block 0 only: [num_buckets, num_heads]. */
  readonly relativeBias: Param | null;

  constructor(w: WeightBuilder, c: T5Config, hasRelativeBias: boolean) {
    const inner = c.num_heads * c.d_kv;
    this.q = w.param('q.weight', [inner, c.d_model]);
    this.k = w.param('k.weight', [inner, c.d_model]);
    this.v = w.param('v.weight', [inner, c.d_model]);
    this.o = w.param('o.weight', [c.d_model, inner]);
    this.relativeBias = hasRelativeBias ? w.param('relative_attention_bias.weight', [c.relative_attention_num_buckets, c.num_heads]) : null;
  }
}

class FeedForward {
  /** wi (plain) or wi_0 (gated, activated) */
  readonly wi0: Param;
  /** wi_1 (gated, linear); null when not gated */
  readonly wi1: Param | null;
  readonly wo: Param;

  constructor(
    w: WeightBuilder,
    c: T5Config,
    readonly kind: FeedForwardKind,
  ) {
    this.wi0 = w.param(kind.gated ? 'wi_0.weight' : 'wi.weight', [c.d_ff, c.d_model]);
    this.wi1 = kind.gated ? w.param('wi_1.weight', [c.d_ff, c.d_model]) : null;
    this.wo = w.param('wo.weight', [c.d_model, c.d_ff]);
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const act = { relu, gelu, gelu_new: geluTanh, silu }[this.kind.activation];
      const h = act(linear(x, this.wi0.t));
      return linear(this.wi1 ? mul(h, linear(x, this.wi1.t)) : h, this.wo.t);
    });
  }
}

class Block {
  readonly attention: SelfAttention;
  readonly attentionNorm: Param;
  readonly feedForward: FeedForward;
  readonly feedForwardNorm: Param;

  constructor(w: WeightBuilder, c: T5Config, index: number, kind: FeedForwardKind) {
    this.attention = new SelfAttention(w.pp('layer.0.SelfAttention'), c, index === 0);
    this.attentionNorm = w.pp('layer.0.layer_norm').param('weight', [c.d_model]);
    this.feedForward = new FeedForward(w.pp('layer.1.DenseReluDense'), c, kind);
    this.feedForwardNorm = w.pp('layer.1.layer_norm').param('weight', [c.d_model]);
  }
}

/** What every layer shares during one forward. */
export interface Shared {
  /** Additive attention bias [heads, L, L]. */
  bias: Tensor;
  /** Key mask [B, L] i32. */
  mask: Tensor;
}

export interface T5EncoderOptions {
  /** Which key holds the token embedding (detect with `embeddingKeyOf`). */
  embeddingKey?: EmbeddingKey;
}

export class T5Encoder {
  readonly blocks: Block[];
  readonly embed: Param;
  readonly finalNorm: Param;
  private readonly builder = new WeightBuilder();

  constructor(
    readonly config: T5Config,
    options: T5EncoderOptions = {},
  ) {
    const kind = feedForwardKind(config.feed_forward_proj);
    const w = this.builder;
    this.embed = w.param(options.embeddingKey ?? 'shared.weight', [config.vocab_size, config.d_model]);
    const enc = w.pp('encoder');
    this.blocks = Array.from({ length: config.num_layers }, (_, i) => new Block(enc.pp('block').pp(i), config, i, kind));
    this.finalNorm = enc.pp('final_layer_norm').param('weight', [config.d_model]);
  }

  params(): Param[] {
    return this.builder.params();
  }

  /** The parameters of block i (for layer-by-layer loading). */
  blockParams(i: number): Param[] {
    const prefix = `encoder.block.${i}.`;
    return this.params().filter((p) => p.key.startsWith(prefix));
  }

  /** Everything outside the blocks plus block 0's relative-position bias: resident while streaming. */
  private sharedParams(): Param[] {
    const bias = this.blocks[0]?.attention.relativeBias;
    return [this.embed, this.finalNorm, ...(bias ? [bias] : [])];
  }

  parameterCount(): number {
    return this.builder.parameterCount();
  }

  /** Frees every loaded weight. */
  dispose(): void {
    releaseWeights(this.params());
  }

  /** last_hidden_state [B, L, d_model] with every weight resident (see loadT5Encoder). */
  forward(inputIds: Int32Array | Tensor, attentionMask: Int32Array | Tensor | null, batch = 1): Tensor {
    const ids = this.checkInputs(inputIds, attentionMask, batch);
    return tidy(() => {
      const shared = this.shared(ids.batch, ids.length, attentionMask);
      let x = this.embedTokens(inputIds, ids.batch, ids.length);
      for (let i = 0; i < this.blocks.length; i++) {
        const next = this.runBlock(i, x, shared);
        x.dispose(); // free each layer's input now rather than at the end of the scope
        x = next;
      }
      return rmsNorm(x, this.finalNorm.t, this.config.layer_norm_epsilon);
    });
  }

  /** Shapes: ids [B, L] (or B·L host ids with `batch`), mask the same or null (all attended). */
  checkInputs(inputIds: Int32Array | Tensor, attentionMask: Int32Array | Tensor | null, batch: number): { batch: number; length: number } {
    const op = 'T5Encoder';
    let b: number;
    let l: number;
    if (inputIds instanceof Tensor) {
      if (inputIds.dtype !== 'i32' || inputIds.rank !== 2) throw new ShapeError(op, `input_ids must be i32 [B, L], got ${inputIds.dtype} [${inputIds.shape.join(', ')}]`);
      [b, l] = inputIds.shape;
    } else {
      if (!Number.isInteger(batch) || batch < 1 || inputIds.length % batch !== 0) throw new ShapeError(op, `${inputIds.length} ids do not split into ${batch} rows`);
      b = batch;
      l = inputIds.length / batch;
      const bad = inputIds.findIndex((id) => id < 0 || id >= this.config.vocab_size);
      if (bad >= 0) throw new ShapeError(op, `input id ${inputIds[bad]} at ${bad} is outside the vocabulary [0, ${this.config.vocab_size})`);
    }
    if (l < 1) throw new ShapeError(op, 'needs at least one token');
    if (attentionMask) {
      const n = attentionMask instanceof Tensor ? attentionMask.size : attentionMask.length;
      if (n !== b * l || (attentionMask instanceof Tensor && attentionMask.dtype !== 'i32')) throw new ShapeError(op, `attention_mask must be i32 with ${b}×${l} entries`);
    }
    return { batch: b, length: l };
  }

  /** Token embeddings [B, L, d_model]. */
  embedTokens(inputIds: Int32Array | Tensor, batch: number, length: number): Tensor {
    return tidy(() => embedding(inputIds, this.embed.t).reshape([batch, length, this.config.d_model]));
  }

  /**
   * The relative-position bias [heads, L, L] from block 0's table (gathered
   * on the device from host-computed bucket ids) and the key mask.
   */
  shared(batch: number, length: number, attentionMask: Int32Array | Tensor | null): Shared {
    const c = this.config;
    const table = this.blocks[0]?.attention.relativeBias;
    if (!table) throw new FormatError('T5Encoder', 'num_layers is 0: there is no relative_attention_bias');
    const gpu = table.t.gpu;
    return tidy(() => {
      const buckets = relativePositionBuckets(length, length, c.relative_attention_num_buckets, c.relative_attention_max_distance);
      const perPair = embedding(buckets, table.t); // [L·L, heads]
      const bias = permute(perPair.reshape([length, length, c.num_heads]), [2, 0, 1]);
      const mask =
        attentionMask instanceof Tensor
          ? attentionMask.reshape([batch, length])
          : Tensor.from(gpu, attentionMask ?? new Int32Array(batch * length).fill(1), [batch, length], 'i32');
      return { bias, mask };
    });
  }

  /** One encoder layer: x [B, L, d_model] → a new tensor of the same shape. */
  runBlock(i: number, x: Tensor, shared: Shared): Tensor {
    const c = this.config;
    const blk = this.blocks[i];
    const a = blk.attention;
    return tidy(() => {
      const h = rmsNorm(x, blk.attentionNorm.t, c.layer_norm_epsilon);
      const q = linear(h, a.q.t);
      const k = linear(h, a.k.t);
      const v = linear(h, a.v.t);
      // T5 does not scale scores by d_kv^-1/2 (the scale is folded into its weights).
      const attn = attention(q, k, v, { heads: c.num_heads, scale: 1, mask: shared.mask, bias: shared.bias });
      const y = add(x, linear(attn, a.o.t));
      const f = blk.feedForward.forward(rmsNorm(y, blk.feedForwardNorm.t, c.layer_norm_epsilon));
      return add(y, f);
    });
  }

  /**
   * The forward with weights streamed from the checkpoint one block at a
   * time: the embedding, the bias table and the final norm are loaded first
   * and every block is loaded, run and released in turn. The checkpoint is
   * checked whole before anything is uploaded. Weights loaded before the
   * call stay loaded; those it loads are released.
   */
  async encodeStreaming(
    gpu: Gpu,
    ckpt: Checkpoint,
    inputIds: Int32Array,
    attentionMask: Int32Array | null,
    options: T5LoadOptions & { batch?: number; onLayer?: (done: number, total: number) => void } = {},
  ): Promise<Tensor> {
    const ids = this.checkInputs(inputIds, attentionMask, options.batch ?? 1);
    const load = loadOptionsFor(ckpt, options);
    checkWeights(this.params(), ckpt, load);
    const everything: LoadOptions = { ...load, ignore: () => true };
    const loadNow = async (ps: Param[]) => {
      const missing = ps.filter((p) => !p.loaded);
      await loadWeights(gpu, missing, ckpt, everything);
      return missing;
    };
    const ownShared = await loadNow(this.sharedParams());
    let shared: Shared | null = null;
    let x: Tensor | null = null;
    try {
      shared = this.shared(ids.batch, ids.length, attentionMask);
      x = this.embedTokens(inputIds, ids.batch, ids.length);
      for (let i = 0; i < this.blocks.length; i++) {
        const own = await loadNow(this.blockParams(i).filter((p) => p !== this.blocks[0].attention.relativeBias));
        try {
          const next = this.runBlock(i, x, shared);
          x.dispose();
          x = next;
          // Wait for the layer before freeing its weights, so at most one layer is resident.
          await gpu.sync();
        } finally {
          releaseWeights(own);
        }
        options.onLayer?.(i + 1, this.blocks.length);
      }
      return rmsNorm(x, this.finalNorm.t, this.config.layer_norm_epsilon);
    } finally {
      // Released weights' buffers are destroyed: submit what reads them first.
      gpu.flush();
      x?.dispose();
      shared?.bias.dispose();
      shared?.mask.dispose();
      releaseWeights(ownShared);
    }
  }
}

export interface T5LoadOptions {
  dtype?: 'f16' | 'f32';
  onProgress?: (done: number, total: number) => void;
}

/** Which key holds the embedding: shared.weight if present, else encoder.embed_tokens.weight. */
export function embeddingKeyOf(ckpt: Checkpoint): EmbeddingKey {
  for (const k of EMBEDDING_KEYS) if (ckpt.get(k)) return k;
  throw new FormatError(ckpt.source, `no token embedding: expected '${EMBEDDING_KEYS.join("' or '")}'`);
}

/**
 * The decoder, the LM head and the tied duplicate of the embedding are in a
 * full T5 checkpoint but not in the encoder.
 */
function loadOptionsFor(ckpt: Checkpoint, options: T5LoadOptions): LoadOptions {
  const used = embeddingKeyOf(ckpt);
  return {
    dtype: options.dtype ?? 'f32',
    onProgress: options.onProgress,
    ignore: (key) => key.startsWith('decoder.') || key === 'lm_head.weight' || ((EMBEDDING_KEYS as readonly string[]).includes(key) && key !== used),
  };
}

/** Builds the encoder for a checkpoint (embedding key detected) without loading it. */
export function t5EncoderFor(config: T5Config, ckpt: Checkpoint): T5Encoder {
  return new T5Encoder(config, { embeddingKey: embeddingKeyOf(ckpt) });
}

/** Builds the encoder and loads every weight (strictly: missing, unexpected or mis-shaped keys are one error). */
export async function loadT5Encoder(gpu: Gpu, config: T5Config, ckpt: Checkpoint, options: T5LoadOptions = {}): Promise<T5Encoder> {
  const enc = t5EncoderFor(config, ckpt);
  try {
    await loadWeights(gpu, enc.params(), ckpt, loadOptionsFor(ckpt, options));
  } catch (e) {
    enc.dispose();
    throw e;
  }
  return enc;
}

/** Files a Hugging Face T5 folder may hold its weights in, in order of preference. */
export const T5_WEIGHT_FILES = [
  'model.safetensors.index.json',
  'model.safetensors',
  // fp16 variants as diffusers pipelines save their text encoder
  'model.safetensors.index.fp16.json',
  'model.fp16.safetensors',
  'pytorch_model.bin.index.json',
  'pytorch_model.bin',
];

/** Opens the weights of a Hugging Face T5 folder (sharded or not, safetensors or torch). */
export async function openT5Checkpoint(dir: FolderLike): Promise<Checkpoint> {
  const folder = asFolder(dir);
  for (const name of T5_WEIGHT_FILES) {
    if (await hasFile(folder, name)) return openCheckpointIn(folder, name);
  }
  throw new FormatError(folder.name, `no T5 weights: expected one of ${T5_WEIGHT_FILES.join(', ')}`);
}
