// The text stage shared by the pipelines (spec §1 steps 1-3): tokenize the
// prompt (and negative prompt), run T5 streaming one layer at a time, then
// the Kandinsky projection into the U-Net's context.
import type { Gpu } from '../gpu/gpu.ts';
import type { Checkpoint } from '../io/checkpoint.ts';
import { type FolderLike, asFolder } from '../io/folder.ts';
import { type Conditioning, type PromptConditioning, conditionPrompt, loadKandinskyProjection } from '../models/t5/conditioning.ts';
import { readT5Config } from '../models/t5/config.ts';
import { openT5Checkpoint, t5EncoderFor } from '../models/t5/encoder.ts';
import type { WeightDType } from '../nn/weights.ts';
import { T5Tokenizer } from '../text/tokenizer.ts';

export interface TextStageInputs {
  prompt: string;
  negativePrompt?: string;
  dtype: WeightDType;
  /** Folder with tokenizer.json or spiece.model. */
  tokenizerDir: FolderLike;
  /** T5 folder: config.json and the weights. */
  textEncoderDir: FolderLike;
  /** The checkpoint holding the projection's `t5.*` keys under `projectionPrefix`. */
  projection: Checkpoint;
  projectionPrefix: string;
  /** The U-Net's context_dim. */
  contextDim: number;
  /** The null embedding, or the builder of the unconditional context for L tokens. */
  unconditional: Float32Array | ((length: number) => Conditioning);
}

export async function encodePrompt(gpu: Gpu, o: TextStageInputs, progress: (done: number, total: number) => void): Promise<PromptConditioning> {
  const tokenizer = await T5Tokenizer.fromDir(o.tokenizerDir);
  const config = await readT5Config('config.json', asFolder(o.textEncoderDir));
  const tokens = tokenizer.encodePrompt(o.prompt, o.negativePrompt);
  const ckpt = await openT5Checkpoint(o.textEncoderDir);
  try {
    const projection = await loadKandinskyProjection(gpu, o.projection, { inDim: config.d_model, contextDim: o.contextDim, dtype: o.dtype, prefix: o.projectionPrefix });
    try {
      const encoder = t5EncoderFor(config, ckpt);
      return await conditionPrompt(
        gpu,
        tokens,
        (ids, mask, batch) => encoder.encodeStreaming(gpu, ckpt, ids, mask, { batch, dtype: o.dtype, onLayer: progress }),
        projection,
        o.unconditional,
      );
    } finally {
      projection.dispose();
    }
  } finally {
    await ckpt.close();
  }
}
