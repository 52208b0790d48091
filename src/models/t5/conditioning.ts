// The Kandinsky text conditioning after T5 (spec §1 steps 2-3; upstream
// ConditionEncoder with its `projections.t5` ModuleDict):
//   - a prompt whose T5 embedding holds any inf (upstream runs T5 in fp16) is
//     zeroed as a whole and its mask set to zeros (upstream checks isinf only);
//   - Linear(d_model → context_dim) without bias, then LayerNorm (eps 1e-5);
//   - positions with mask 0 set to zero;
//   - the sequence cut to L = min(max mask count + 1, sequence length): one
//     zeroed padding position stays unless a prompt fills every position;
//   - the unconditional context: zeros with token 0 = null_embedding and mask
//     [1, 0, 0, ...], unless a negative prompt's projected context replaces it.
//     Weights without a null embedding (Kandinsky 3 in the diffusers layout)
//     use diffusers' empty-prompt context instead (emptyPromptConditioning).
import type { Gpu } from '../../gpu/gpu.ts';
import { ShapeError } from '../../errors.ts';
import type { Checkpoint } from '../../io/checkpoint.ts';
import { type Param, WeightBuilder, loadWeights, releaseWeights } from '../../nn/weights.ts';
import type { PromptPair } from '../../text/tokenizer.ts';
import { maskRows, slice } from '../../ops/layout.ts';
import { linear } from '../../ops/matmul.ts';
import { layerNorm } from '../../ops/norm.ts';
import { tidy } from '../../tensor/scope.ts';
import { Tensor, shapeString } from '../../tensor/tensor.ts';

/** LayerNorm eps of `projections.t5.1` (torch's default). */
export const PROJECTION_LN_EPS = 1e-5;

export interface Conditioning {
  /** [B, L, context_dim] f32. */
  context: Tensor;
  /** [B·L] 0/1: upstream's context_mask (bool) on the host. */
  contextMask: Int32Array;
  /** L. */
  length: number;
}

export interface ProjectionOptions {
  /** T5's d_model (4096 for Flan-UL2). */
  inDim: number;
  /** The U-Net's context_dim (4096). */
  contextDim: number;
}

/**
 * `projections.t5`: keys `t5.0.weight` [ctx, d_model] (Linear, no bias),
 * `t5.1.weight`, `t5.1.bias` [ctx] (LayerNorm), under the builder's prefix.
 */
export class KandinskyProjection {
  readonly linear: Param;
  readonly normWeight: Param;
  readonly normBias: Param;

  constructor(
    readonly options: ProjectionOptions,
    builder = new WeightBuilder(),
  ) {
    const t5 = builder.pp('t5');
    this.linear = t5.pp('0').param('weight', [options.contextDim, options.inDim]);
    this.normWeight = t5.pp('1').param('weight', [options.contextDim]);
    this.normBias = t5.pp('1').param('bias', [options.contextDim]);
  }

  params(): Param[] {
    return [this.linear, this.normWeight, this.normBias];
  }

  dispose(): void {
    releaseWeights(this.params());
  }

  /**
   * The conditioning context from T5 embeddings [B, S, d_model] and their
   * attention mask [B·S] (0/1). Reads the embeddings back once for the inf
   * check (S·d_model floats per prompt); projects only the L kept tokens
   * (the projection is per token, so cutting first changes nothing).
   */
  async forward(embeddings: Tensor, attentionMask: Int32Array): Promise<Conditioning> {
    const op = 'KandinskyProjection';
    if (embeddings.rank !== 3 || embeddings.shape[2] !== this.options.inDim || embeddings.dtype !== 'f32') {
      throw new ShapeError(op, `embeddings must be f32 [B, S, ${this.options.inDim}], got ${embeddings.dtype} ${shapeString(embeddings.shape)}`);
    }
    const [batch, seq] = embeddings.shape;
    if (attentionMask.length !== batch * seq) throw new ShapeError(op, `attention mask has ${attentionMask.length} entries for ${batch}×${seq} tokens`);
    const mask = Int32Array.from(attentionMask, (m) => (m ? 1 : 0));
    const values = (await embeddings.read()) as Float32Array;
    const perPrompt = seq * this.options.inDim;
    for (let b = 0; b < batch; b++) {
      const row = values.subarray(b * perPrompt, (b + 1) * perPrompt);
      // isinf only, as upstream: a NaN passes through like any value.
      if (row.some((v) => v === Infinity || v === -Infinity)) mask.fill(0, b * seq, (b + 1) * seq);
    }
    let count = 0;
    for (let b = 0; b < batch; b++) count = Math.max(count, mask.subarray(b * seq, (b + 1) * seq).reduce((s, m) => s + m, 0));
    const length = Math.min(count + 1, seq);
    const contextMask = new Int32Array(batch * length);
    for (let b = 0; b < batch; b++) contextMask.set(mask.subarray(b * seq, b * seq + length), b * length);
    const context = tidy(() => {
      const kept = length === seq ? embeddings : slice(embeddings, 1, 0, length);
      const projected = layerNorm(linear(kept, this.linear.t), this.normWeight.t, this.normBias.t, PROJECTION_LN_EPS);
      // maskRows writes zeros (not x·0), so the NaN an inf row projects to becomes 0 too.
      return maskRows(projected, Tensor.from(embeddings.gpu, contextMask, [batch, length], 'i32'));
    });
    return { context, contextMask, length };
  }
}

/** The keyframe checkpoint's `projections` dict (keys `projections.t5.*`), strictly. */
export async function loadKandinskyProjection(
  gpu: Gpu,
  ckpt: Checkpoint,
  options: ProjectionOptions & { prefix?: string; dtype?: 'f16' | 'f32' } = { inDim: 4096, contextDim: 4096 },
): Promise<KandinskyProjection> {
  const proj = new KandinskyProjection(options);
  const prefix = options.prefix ?? 'projections.';
  try {
    // Only projections.t5.* belong to us (a checkpoint may hold other models' projections).
    await loadWeights(gpu, proj.params(), ckpt, { prefix, dtype: options.dtype ?? 'f32', ignore: (k) => !k.startsWith('t5.') });
  } catch (e) {
    proj.dispose();
    throw e;
  }
  return proj;
}

/**
 * The unconditional context without a negative prompt: [B, L, C] zeros with
 * token 0 = null_embedding, mask 1 for token 0 only.
 */
export function nullConditioning(gpu: Gpu, nullEmbedding: Float32Array, batch: number, length: number): Conditioning {
  if (!Number.isInteger(length) || length < 1 || !Number.isInteger(batch) || batch < 1) {
    throw new ShapeError('nullConditioning', `needs batch >= 1 and length >= 1, got ${batch}, ${length}`);
  }
  const dim = nullEmbedding.length;
  const data = new Float32Array(batch * length * dim);
  const contextMask = new Int32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    data.set(nullEmbedding, b * length * dim);
    contextMask[b * length] = 1;
  }
  return { context: Tensor.from(gpu, data, [batch, length, dim]), contextMask, length };
}

/**
 * The unconditional context of diffusers' Kandinsky3Pipeline, for weights
 * without a null embedding: T5 embeddings of zeros with an all-zero mask go
 * through the projection inside its U-Net, where LayerNorm turns each zero
 * token into the norm's bias; no token is attended (an all-masked attention
 * row averages every value, as torch and our kernel do). [B, L, C].
 */
export function emptyPromptConditioning(gpu: Gpu, normBias: Float32Array, batch: number, length: number): Conditioning {
  if (!Number.isInteger(length) || length < 1 || !Number.isInteger(batch) || batch < 1) {
    throw new ShapeError('emptyPromptConditioning', `needs batch >= 1 and length >= 1, got ${batch}, ${length}`);
  }
  const data = new Float32Array(batch * length * normBias.length);
  for (let r = 0; r < batch * length; r++) data.set(normBias, r * normBias.length);
  return { context: Tensor.from(gpu, data, [batch, length, normBias.length]), contextMask: new Int32Array(batch * length), length };
}

/** Reads `null_embedding` (context_dim,) from a keyframe checkpoint. */
export async function readNullEmbedding(ckpt: Checkpoint, key = 'null_embedding'): Promise<Float32Array> {
  const { decodeF32 } = await import('../../io/decode.ts');
  const { WeightNotFoundError } = await import('../../errors.ts');
  const e = ckpt.get(key);
  if (!e) throw new WeightNotFoundError(key, ckpt.source);
  return decodeF32(await e.read(), e.dtype, `${ckpt.source}: '${key}'`);
}

/** Runs T5 on B·S ids with their mask → last_hidden_state [B, S, d_model]. */
export type EncodeFn = (inputIds: Int32Array, attentionMask: Int32Array, batch: number) => Promise<Tensor>;

export interface PromptConditioning {
  /** The prompt's context [1, L, C]. */
  cond: Conditioning;
  /** The negative prompt's context if one was given, else the null-embedding context; [1, L, C]. */
  uncond: Conditioning;
}

/**
 * Spec §1 steps 2-3 for one tokenized prompt (and negative prompt): both run
 * through T5 as one batch of 2 (rows are independent), with the prompt's
 * attention mask for both, so they share L. Without a negative prompt the
 * unconditional context is the null embedding's, or, when a function is
 * given instead, the one it builds for L tokens.
 */
export async function conditionPrompt(
  gpu: Gpu,
  tokens: PromptPair,
  encode: EncodeFn,
  projection: KandinskyProjection,
  unconditional: Float32Array | ((length: number) => Conditioning),
): Promise<PromptConditioning> {
  const seq = tokens.prompt.inputIds.length;
  const rows = tokens.negative ? [tokens.prompt, tokens.negative] : [tokens.prompt];
  const ids = new Int32Array(rows.length * seq);
  const mask = new Int32Array(rows.length * seq);
  rows.forEach((r, i) => {
    ids.set(r.inputIds, i * seq);
    mask.set(r.attentionMask, i * seq);
  });
  const embeddings = await encode(ids, mask, rows.length);
  let both: Conditioning;
  try {
    both = await projection.forward(embeddings, mask);
  } finally {
    embeddings.dispose();
  }
  const { length } = both;
  if (!tokens.negative) {
    return { cond: both, uncond: unconditional instanceof Float32Array ? nullConditioning(gpu, unconditional, 1, length) : unconditional(length) };
  }
  const row = (i: number): Conditioning => ({
    context: slice(both.context, 0, i, 1),
    contextMask: both.contextMask.slice(i * length, (i + 1) * length),
    length,
  });
  try {
    return { cond: row(0), uncond: row(1) };
  } finally {
    both.context.dispose();
  }
}
