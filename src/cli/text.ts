// `kandinsky tokenize "<prompt>" --tokenizer DIR` and
// `kandinsky encode "<prompt>" --text-encoder DIR --out emb.safetensors`:
// the text-conditioning stage on its own (spec §1 steps 1-3).
import { UsageError } from '../errors.ts';
import { T5_MAX_TOKENS, T5Tokenizer } from '../text/tokenizer.ts';

export interface TokenizeOptions {
  negativePrompt?: string;
  maxLength?: number;
}

/** Prints the prompt's ids, attention mask and pieces as one JSON object. */
export async function tokenizeCommand(prompt: string, dir: string, options: TokenizeOptions = {}): Promise<number> {
  const tok = await T5Tokenizer.fromDir(dir);
  const { prompt: p, negative } = tok.encodePrompt(prompt, options.negativePrompt, options.maxLength ?? T5_MAX_TOKENS);
  const out: Record<string, unknown> = {
    tokens: Array.from(p.inputIds.subarray(0, p.length), (id) => tok.idToPiece(id)),
    input_ids: Array.from(p.inputIds),
    attention_mask: Array.from(p.attentionMask),
  };
  if (negative) {
    out.negative_input_ids = Array.from(negative.inputIds);
    out.negative_attention_mask = Array.from(negative.attentionMask);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}

export interface EncodeOptions {
  negativePrompt?: string;
  /** Weight storage on the device (default f16: Flan-UL2 is 8.6B parameters). */
  dtype?: 'f16' | 'f32';
  /**
   * A keyframe checkpoint (projections + null_embedding): also writes the
   * projected `context`, `context_mask` and the unconditional
   * `uncond_context`, `uncond_context_mask`.
   */
  checkpoint?: string;
  /** Progress lines on stderr. */
  quiet?: boolean;
}

/**
 * Encodes a prompt with the T5 encoder of a Hugging Face folder
 * (config.json, tokenizer.json or spiece.model, weights sharded or not),
 * streaming the weights one layer at a time, and writes emb.safetensors:
 * `input_ids` I32 [R, 128], `attention_mask` I32 [R, 128] and
 * `last_hidden_state` F32 [R, 128, d_model] (R = 2 with a negative prompt:
 * prompt, negative), plus the projected contexts when a checkpoint is given.
 */
export async function encodeCommand(prompt: string, textEncoderDir: string, out: string, options: EncodeOptions = {}): Promise<number> {
  if (!out.endsWith('.safetensors')) throw new UsageError(`encode: output '${out}' must end in .safetensors`);
  const path = await import('node:path');
  const { Gpu } = await import('../gpu/gpu.ts');
  const { readT5Config } = await import('../models/t5/config.ts');
  const { openT5Checkpoint, t5EncoderFor } = await import('../models/t5/encoder.ts');
  const { writeSafetensorsFile } = await import('../io/safetensors.ts');
  const log = (s: string) => options.quiet || process.stderr.write(`${s}\n`);

  const tok = await T5Tokenizer.fromDir(textEncoderDir);
  const config = await readT5Config(path.join(textEncoderDir, 'config.json'));
  const tokens = tok.encodePrompt(prompt, options.negativePrompt);
  const rows = tokens.negative ? [tokens.prompt, tokens.negative] : [tokens.prompt];
  const seq = tokens.prompt.inputIds.length;
  const ids = new Int32Array(rows.length * seq);
  const mask = new Int32Array(rows.length * seq);
  rows.forEach((r, i) => {
    ids.set(r.inputIds, i * seq);
    mask.set(r.attentionMask, i * seq);
  });

  const gpu = await Gpu.open();
  const ckpt = await openT5Checkpoint(textEncoderDir);
  const tensors: { name: string; dtype: 'F32' | 'I32'; shape: number[]; data: Uint8Array }[] = [];
  const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  try {
    const encoder = t5EncoderFor(config, ckpt);
    const t0 = performance.now();
    const encode = (i: Int32Array, m: Int32Array, batch: number) =>
      encoder.encodeStreaming(gpu, ckpt, i, m, { dtype: options.dtype ?? 'f16', batch, onLayer: (d, n) => log(`T5 layer ${d}/${n}`) });
    const hidden = await encode(ids, mask, rows.length);
    try {
      log(`T5 encoder: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      tensors.push(
        { name: 'input_ids', dtype: 'I32', shape: [rows.length, seq], data: bytes(ids) },
        { name: 'attention_mask', dtype: 'I32', shape: [rows.length, seq], data: bytes(mask) },
        { name: 'last_hidden_state', dtype: 'F32', shape: [rows.length, seq, config.d_model], data: bytes((await hidden.read()) as Float32Array) },
      );
    } finally {
      hidden.dispose();
    }
    if (options.checkpoint) {
      const { openCheckpointFile } = await import('../io/open.ts');
      const { conditionPrompt, loadKandinskyProjection, readNullEmbedding } = await import('../models/t5/conditioning.ts');
      const kf = await openCheckpointFile(options.checkpoint);
      try {
        const nullEmbedding = await readNullEmbedding(kf);
        const projection = await loadKandinskyProjection(gpu, kf, { inDim: config.d_model, contextDim: nullEmbedding.length });
        try {
          // The T5 output above is reused: the projection reads it from the device again.
          const { Tensor } = await import('../tensor/tensor.ts');
          const hiddenValues = new Float32Array(tensors[2].data.buffer, tensors[2].data.byteOffset, rows.length * seq * config.d_model);
          const c = await conditionPrompt(gpu, tokens, async () => Tensor.from(gpu, hiddenValues, [rows.length, seq, config.d_model]), projection, nullEmbedding);
          for (const [name, cond] of [
            ['context', c.cond],
            ['uncond_context', c.uncond],
          ] as const) {
            tensors.push(
              { name, dtype: 'F32', shape: [...cond.context.shape], data: bytes((await cond.context.read()) as Float32Array) },
              { name: `${name}_mask`, dtype: 'I32', shape: [1, cond.length], data: bytes(cond.contextMask) },
            );
            cond.context.dispose();
          }
        } finally {
          projection.dispose();
        }
      } finally {
        await kf.close();
      }
    }
  } finally {
    await ckpt.close();
    gpu.destroy();
  }
  await writeSafetensorsFile(out, tensors, { prompt, ...(options.negativePrompt !== undefined ? { negative_prompt: options.negativePrompt } : {}) });
  log(`wrote ${out}`);
  return 0;
}
