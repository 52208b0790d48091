// Kandinsky 3.0 text to image (upstream Kandinsky-3 `t2i_pipeline.py`):
// prompt → T5 → projection → context; a latent [1, 4, H/8, W/8] denoised by
// the text-to-image U-Net with Kandinsky 3's sampler (1000-step cosine
// schedule, percentile 0.99, strided DDIM-style steps with eta, guidance
// (w + 1)·cond − w·uncond); the image MoVQ decodes it. Weights in the
// upstream or the diffusers layout (imageWeights.ts). Each model is loaded
// when its stage starts and released when it ends.
import { Gpu } from '../gpu/gpu.ts';
import { UsageError } from '../errors.ts';
import { type GuidedModel, sample } from '../diffusion/sampler.ts';
import { makeSchedule } from '../diffusion/schedule.ts';
import { stridedTimes } from '../diffusion/step.ts';
import { downFactor } from '../models/movq/config.ts';
import { MoVQ } from '../models/movq/movq.ts';
import { checkResources, decodeStage, resourceLimits, unetStage } from './resources.ts';
import { type Conditioning, emptyPromptConditioning } from '../models/t5/conditioning.ts';
import { loadUNet } from '../models/unet/unet.ts';
import type { WeightDType } from '../nn/weights.ts';
import { concat } from '../ops/layout.ts';
import { Tensor } from '../tensor/tensor.ts';
import { type RgbFrame, planarToRgb8 } from '../video/frames.ts';
import { type ImageWeights, type ImageWeightsLayout, readProjectionNormBias, resolveImageWeights } from './imageWeights.ts';
import { type StageProgress, type StageTimingOf, Stages } from './stages.ts';
import { encodePrompt } from './text.ts';

/** Upstream's schedule for Kandinsky 3: 1000 cosine steps, dynamic threshold at the 0.99 quantile. */
export const KANDINSKY3_SCHEDULE = { schedule: 'cosine', timesteps: 1000, percentile: 0.99 } as const;

export interface ImageOptions {
  prompt: string;
  negativePrompt?: string;
  /** Folder with the weights, either layout (see imageWeights.ts). */
  weights: string;
  /** Default 1024×1024, upstream's. Multiples of 64. */
  width?: number;
  height?: number;
  /** Sampling steps (default 50): indices range(999, 0, −(1000 // steps)). */
  steps?: number;
  /** Classifier-free guidance w (default 3, upstream's); 0 runs the prompt alone. */
  guidance?: number;
  /** DDIM eta (default 1, upstream's); 0 is deterministic given the initial noise. */
  eta?: number;
  seed?: number;
  dtype?: WeightDType;
  gpu?: Gpu;
  onProgress?: (p: ImageProgress) => void;
  signal?: AbortSignal;
}

export type ImageStageName = 'text' | 'denoise' | 'decode';
export type ImageProgress = StageProgress<ImageStageName>;

export interface ImageResult {
  image: RgbFrame;
  width: number;
  height: number;
  layout: ImageWeightsLayout;
  timings: StageTimingOf<ImageStageName>[];
  peakBytes: number;
}

/** Noise stream of the image latent (the video stages use 1..3). */
const IMAGE_STREAM = 4;

function validate(o: ImageOptions) {
  const full = { width: 1024, height: 1024, steps: 50, guidance: 3, eta: 1, seed: 0, dtype: 'f32' as WeightDType, ...o };
  for (const [name, v] of [['width', full.width], ['height', full.height]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % 64 !== 0) throw new UsageError(`${name} must be a positive multiple of 64, got ${v}`);
  }
  if (!Number.isInteger(full.steps) || full.steps < 1 || full.steps > KANDINSKY3_SCHEDULE.timesteps) throw new UsageError(`steps must be an integer in 1..${KANDINSKY3_SCHEDULE.timesteps}, got ${full.steps}`);
  if (!Number.isSafeInteger(full.seed) || full.seed < 0) throw new UsageError(`seed must be a non-negative integer, got ${full.seed}`);
  if (!Number.isFinite(full.guidance) || full.guidance < 0) throw new UsageError(`guidance must be a non-negative number, got ${full.guidance}`);
  if (!(full.eta >= 0 && full.eta <= 1)) throw new UsageError(`eta must be in [0, 1], got ${full.eta}`);
  if (typeof full.prompt !== 'string') throw new UsageError('prompt must be a string');
  return full;
}

export async function generateImage(options: ImageOptions): Promise<ImageResult> {
  const o = validate(options);
  const weights = await resolveImageWeights(o.weights);
  const gpu = o.gpu ?? (await Gpu.open());
  try {
    // Before any weights load: a size the adapter cannot run is refused with the numbers.
    const f = downFactor(weights.movqConfig);
    const [h, w] = [o.height / f, o.width / f];
    const estimate = [unetStage('denoise', weights.unetConfig, o.guidance > 0 ? 2 : 1, h, w, o.dtype), decodeStage(weights.movqConfig, 1, h, w, o)];
    checkResources(estimate, await resourceLimits(gpu.info), `${o.width}x${o.height}, ${o.dtype} weights`);
  } catch (e) {
    if (!o.gpu) gpu.destroy();
    throw e;
  }
  const stages = new Stages<ImageStageName>(gpu, o.onProgress, o.signal);
  let image: RgbFrame;
  try {
    const { cond, uncond } = await stages.run('text', (progress) => encodeText(gpu, o, weights, progress));
    let latent: Tensor;
    try {
      latent = await stages.run('denoise', (progress) => denoise(gpu, o, weights, cond, uncond, progress));
    } finally {
      cond.context.dispose();
      uncond.context.dispose();
    }
    image = await stages.run('decode', () => decode(gpu, o, weights, latent)).finally(() => latent.dispose());
  } finally {
    if (!o.gpu) gpu.destroy();
  }
  return { image, width: o.width, height: o.height, layout: weights.layout, timings: stages.timings, peakBytes: stages.peakBytes };
}

async function encodeText(gpu: Gpu, o: ReturnType<typeof validate>, weights: ImageWeights, progress: (done: number, total: number) => void) {
  const projection = await weights.openProjection();
  try {
    const nullEmbedding = await weights.readNullEmbedding();
    // Without a null embedding (diffusers layout): diffusers' empty-prompt context.
    const normBias = nullEmbedding ? null : await readProjectionNormBias(projection);
    return await encodePrompt(
      gpu,
      {
        ...o,
        tokenizerDir: weights.tokenizer,
        textEncoderDir: weights.textEncoder,
        projection,
        projectionPrefix: '',
        contextDim: weights.unetConfig.context_dim!,
        unconditional: nullEmbedding ?? ((length) => emptyPromptConditioning(gpu, normBias!, 1, length)),
      },
      progress,
    );
  } finally {
    await projection.close();
  }
}

async function denoise(
  gpu: Gpu,
  o: ReturnType<typeof validate>,
  weights: ImageWeights,
  cond: Conditioning,
  uncond: Conditioning,
  progress: (done: number, total: number) => void,
): Promise<Tensor> {
  const config = weights.unetConfig;
  const f = downFactor(weights.movqConfig);
  const ckpt = await weights.openUNet();
  const unet = await loadUNet(gpu, config, ckpt, { dtype: o.dtype }).finally(() => ckpt.close());
  const both = concat([cond.context, uncond.context], 0);
  const bothMask = Tensor.from(gpu, new Int32Array([...cond.contextMask, ...uncond.contextMask]), [2, cond.length], 'i32');
  const condMask = Tensor.from(gpu, cond.contextMask, [1, cond.length], 'i32');
  try {
    const model: GuidedModel = (x, time, withUncond) =>
      unet.forward({
        x,
        time: new Int32Array(withUncond ? [time, time] : [time]),
        context: withUncond ? both : cond.context,
        contextMask: withUncond ? bothMask : condMask,
      });
    const schedule = makeSchedule(KANDINSKY3_SCHEDULE);
    return await sample(gpu, {
      schedule,
      shape: [1, config.num_channels, o.height / f, o.width / f],
      seed: o.seed,
      stream: IMAGE_STREAM,
      guidance: o.guidance,
      vPrediction: false,
      strided: { times: stridedTimes(KANDINSKY3_SCHEDULE.timesteps, o.steps), eta: o.eta },
      model,
      stage: 'denoise',
      onStep: progress,
      signal: o.signal,
    });
  } finally {
    for (const t of [both, bothMask, condMask]) t.dispose();
    unet.dispose();
  }
}

async function decode(gpu: Gpu, o: ReturnType<typeof validate>, weights: ImageWeights, latent: Tensor): Promise<RgbFrame> {
  const movq = new MoVQ(weights.movqConfig, { encoder: false });
  const ckpt = await weights.openMoVQ();
  try {
    await movq.load(gpu, ckpt, { dtype: o.dtype });
    const out = movq.decode(latent);
    try {
      o.signal?.throwIfAborted();
      const data = (await out.read()) as Float32Array;
      // pixels = clip((x + 1) / 2, 0, 1), truncated to 8 bits as upstream's ToPILImage
      return planarToRgb8(
        data.map((v) => (v + 1) / 2),
        o.width,
        o.height,
      );
    } finally {
      out.dispose();
    }
  } finally {
    movq.release();
    await ckpt.close();
  }
}
