// Text to video (spec §1): prompt → T5 → projection → context; 15 keyframe
// latents; one or two interpolation passes; MoVQ decoding in chunks; RGB.
// Stage by stage, each model is loaded when its stage starts and released
// when it ends, so the peak is the largest stage, not the sum.
import { openDevice } from '../gpu/device.ts';
import { Gpu } from '../gpu/gpu.ts';
import { UsageError } from '../errors.ts';
import type { Checkpoint } from '../io/checkpoint.ts';
import type { Folder, FolderLike } from '../io/folder.ts';
import { openCheckpointIn } from '../io/open.ts';
import { type GuidedModel, sample } from '../diffusion/sampler.ts';
import { makeSchedule } from '../diffusion/schedule.ts';
import { concat, slice } from '../ops/layout.ts';
import { type MoVQConfig, downFactor } from '../models/movq/config.ts';
import { MoVQ } from '../models/movq/movq.ts';
import { type Conditioning, nullConditioning, readNullEmbedding } from '../models/t5/conditioning.ts';
import { readT5Config } from '../models/t5/config.ts';
import type { UNetConfig } from '../models/unet/config.ts';
import { type UNet, loadUNet } from '../models/unet/unet.ts';
import { tidy } from '../tensor/scope.ts';
import { Tensor } from '../tensor/tensor.ts';
import { type RgbFrame, planarToRgb8 } from '../video/frames.ts';
import type { WeightDType } from '../nn/weights.ts';
import { checkResources, estimateRun, resourceLimits } from './resources.ts';
import { type StageProgress, type StageTimingOf, Stages } from './stages.ts';
import { encodePrompt } from './text.ts';
import { readModelConfigs, resolveWeightsFolder } from './weightsFolder.ts';

export type FrameRate = 'low' | 'medium' | 'high';

/** Playback rate of the written video for each frame rate (about 7.5 s of video). */
export const PLAYBACK_FPS: Readonly<Record<FrameRate, number>> = { low: 2, medium: 8, high: 30 };

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  /** Folder with the release (see weightsFolder.ts): a local path, or picked files or a URL in a browser. */
  weights: FolderLike;
  fps?: FrameRate;
  width?: number;
  height?: number;
  steps?: number;
  guidance?: number;
  interpolationGuidance?: number;
  seed?: number;
  dtype?: WeightDType;
  /** MoVQ frames per chunk (default: upstream's chunking for the temporal decoder). */
  decodeChunkFrames?: number;
  decodeChunkMode?: 'upstream' | 'overlap';
  gpu?: Gpu;
  onProgress?: (p: Progress) => void;
  /** Each frame as soon as it is decoded, in order. */
  onFrame?: (frame: RgbFrame, index: number) => void;
  signal?: AbortSignal;
}

export type StageName = 'text' | 'keyframes' | 'interpolation 1' | 'interpolation 2' | 'decode';

export type Progress = StageProgress<StageName>;

export type StageTiming = StageTimingOf<StageName>;

export interface GenerateResult {
  frames: RgbFrame[];
  /** Playback rate for the written video. */
  fps: number;
  width: number;
  height: number;
  timings: StageTiming[];
  /** Peak bytes the device held over the whole run. */
  peakBytes: number;
}

export function validateOptions(o: GenerateOptions): Required<Omit<GenerateOptions, 'negativePrompt' | 'gpu' | 'onProgress' | 'onFrame' | 'signal' | 'decodeChunkFrames'>> & GenerateOptions {
  const full = {
    fps: 'medium' as FrameRate,
    width: 512,
    height: 512,
    steps: 50,
    guidance: 5,
    interpolationGuidance: 0.25,
    seed: 0,
    dtype: 'f32' as WeightDType,
    decodeChunkMode: 'upstream' as const,
    ...o,
  };
  for (const [name, v] of [['width', full.width], ['height', full.height]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % 64 !== 0) throw new UsageError(`${name} must be a positive multiple of 64, got ${v}`);
  }
  if (!Number.isInteger(full.steps) || full.steps < 2) throw new UsageError(`steps must be an integer >= 2, got ${full.steps}`);
  if (!Number.isSafeInteger(full.seed) || full.seed < 0) throw new UsageError(`seed must be a non-negative integer, got ${full.seed}`);
  if (!['low', 'medium', 'high'].includes(full.fps)) throw new UsageError(`fps must be low, medium or high, got ${full.fps}`);
  for (const [name, v] of [['guidance', full.guidance], ['interpolation guidance', full.interpolationGuidance]] as const) {
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`${name} must be a non-negative number, got ${v}`);
  }
  if (typeof full.prompt !== 'string') throw new UsageError('prompt must be a string');
  return full;
}

/** Noise streams, one per stage, so stages never share random numbers. */
const STREAM = { keyframes: 1, 'interpolation 1': 2, 'interpolation 2': 3 } as const;

export async function generateVideo(options: GenerateOptions): Promise<GenerateResult> {
  const o = validateOptions(options);
  const folder = await resolveWeightsFolder(o.weights);
  const configs = await readModelConfigs(folder.folder);
  // Checked before any weights load: a run that cannot fit is refused with the numbers.
  const estimate = estimateRun(configs, await readT5Config('config.json', folder.textEncoder), o);
  const describe = `${o.width}x${o.height}, fps ${o.fps}, ${o.dtype} weights`;
  let gpu = o.gpu;
  if (gpu) {
    checkResources(estimate, await resourceLimits(gpu.info), describe);
  } else {
    const opened = await openDevice();
    try {
      checkResources(estimate, await resourceLimits(opened.info), describe);
    } catch (e) {
      opened.device.destroy();
      throw e;
    }
    gpu = await Gpu.withKernels(opened);
  }
  const stages = new Stages<StageName>(gpu, o.onProgress, o.signal);
  const stage = stages.run.bind(stages);
  const latentH = o.height / downFactor(configs.movq);
  const latentW = o.width / downFactor(configs.movq);
  const keyframeCkpt = await openCheckpointIn(folder.folder, folder.keyframe);
  const schedule = makeSchedule({ schedule: 'cosine', timesteps: o.steps, percentile: 0.98 });
  let frames: RgbFrame[] = [];
  try {
    const { cond, uncond } = await stage('text', async (progress) =>
      encodePrompt(
        gpu,
        {
          ...o,
          tokenizerDir: folder.textEncoder,
          textEncoderDir: folder.textEncoder,
          projection: keyframeCkpt,
          projectionPrefix: 'projections.',
          contextDim: configs.keyframe.context_dim!,
          unconditional: await readNullEmbedding(keyframeCkpt),
        },
        progress,
      ),
    );
    let latents: Tensor;
    try {
      latents = await stage('keyframes', (progress) => sampleKeyframes(gpu, o, keyframeCkpt, configs.keyframe, schedule, cond, uncond, [latentH, latentW], progress));
    } finally {
      cond.context.dispose();
      uncond.context.dispose();
    }
    const passes = o.fps === 'low' ? [] : o.fps === 'medium' ? [3] : [3, 1];
    if (passes.length) {
      const interpCkpt = await openCheckpointIn(folder.folder, folder.interpolation);
      try {
        for (let p = 0; p < passes.length; p++) {
          const name = p === 0 ? 'interpolation 1' : 'interpolation 2';
          const prev = latents;
          latents = await stage(name, (progress) => interpolate(gpu, o, interpCkpt, configs.interpolation, schedule, prev, passes[p], STREAM[name], name, progress));
          prev.dispose();
        }
      } finally {
        await interpCkpt.close();
      }
    }
    frames = await stage('decode', (progress) => decode(gpu, o, folder.folder, folder.movq, configs.movq, latents, progress)).finally(() => latents.dispose());
  } finally {
    await keyframeCkpt.close();
    if (!o.gpu) gpu.destroy();
  }
  return { frames, fps: PLAYBACK_FPS[o.fps], width: o.width, height: o.height, timings: stages.timings, peakBytes: stages.peakBytes };
}

/** Rows of a [R, L, C] context stacked: the conditional rows, then the unconditional. */
function stackConditioning(a: Conditioning, b: Conditioning): { context: Tensor; mask: Tensor } {
  const mask = new Int32Array([...a.contextMask, ...b.contextMask]);
  return {
    context: concat([a.context, b.context], 0),
    mask: Tensor.from(a.context.gpu, mask, [a.context.shape[0] + b.context.shape[0], a.length], 'i32'),
  };
}

async function sampleKeyframes(
  gpu: Gpu,
  o: ReturnType<typeof validateOptions>,
  ckpt: Checkpoint,
  config: UNetConfig,
  schedule: ReturnType<typeof makeSchedule>,
  cond: Conditioning,
  uncond: Conditioning,
  [h, w]: [number, number],
  progress: (done: number, total: number) => void,
): Promise<Tensor> {
  const frames = config.num_frames ?? 15;
  const unet = await loadUNet(gpu, config, ckpt, { dtype: o.dtype });
  const both = stackConditioning(cond, uncond);
  const condMask = Tensor.from(gpu, cond.contextMask, [1, cond.length], 'i32');
  // Frame positions 0, 12, ..., 168 (arange(0, 180, 180 // 15)), per video in the batch.
  const step = Math.floor(180 / frames);
  const positions = Int32Array.from({ length: frames }, (_, i) => i * step);
  try {
    const model: GuidedModel = (x, time, withUncond) =>
      unet.forward({
        x,
        time: new Int32Array(withUncond ? [time, time] : [time]),
        context: withUncond ? both.context : cond.context,
        contextMask: withUncond ? both.mask : condMask,
        temporalEmbed: withUncond ? new Int32Array([...positions, ...positions]) : positions,
      });
    return await sample(gpu, {
      schedule,
      shape: [frames, config.num_channels, h, w],
      seed: o.seed,
      stream: STREAM.keyframes,
      guidance: o.guidance,
      vPrediction: false,
      model,
      stage: 'keyframes',
      onStep: progress,
      signal: o.signal,
    });
  } finally {
    both.context.dispose();
    both.mask.dispose();
    condMask.dispose();
    unet.dispose();
  }
}

/**
 * One interpolation pass: N frames → 4N − 3. Group g sits between frames g and
 * g + 1 and predicts 3 frames (12 channels, frame-major). The conditional
 * branch sees the keyframes, the unconditional one zeros; both get the
 * 2-token null context.
 */
async function interpolate(
  gpu: Gpu,
  o: ReturnType<typeof validateOptions>,
  ckpt: Checkpoint,
  config: UNetConfig,
  schedule: ReturnType<typeof makeSchedule>,
  frames: Tensor,
  skipFrames: number,
  stream: number,
  stageName: 'interpolation 1' | 'interpolation 2',
  progress: (done: number, total: number) => void,
): Promise<Tensor> {
  const [n, c, h, w] = frames.shape;
  const groups = n - 1;
  const unet: UNet = await loadUNet(gpu, config, ckpt, { dtype: o.dtype });
  const nullEmbedding = await readNullEmbedding(ckpt);
  const ctx = nullConditioning(gpu, nullEmbedding, 1, 2);
  const ctxMask = Tensor.from(gpu, ctx.contextMask, [1, 2], 'i32');
  const left = slice(frames, 0, 0, groups);
  const right = slice(frames, 0, 1, groups);
  const zeros = Tensor.from(gpu, new Float32Array(groups * c * h * w), [groups, c, h, w]);
  try {
    const model: GuidedModel = (x, time, withUncond) =>
      tidy(() => {
        const condIn = concat([left, x.narrow(0, groups), right], 1);
        const input = withUncond ? concat([condIn, concat([zeros, x.narrow(groups, groups), zeros], 1)], 0) : condIn;
        return unet.forward({
          x: input,
          time: new Int32Array([time]),
          context: ctx.context,
          contextMask: ctxMask,
          skipFrames: new Int32Array([skipFrames]),
          numTemporalGroups: groups,
        });
      });
    const predicted = await sample(gpu, {
      schedule,
      shape: [groups, config.out_channels, h, w],
      seed: o.seed,
      stream,
      guidance: o.interpolationGuidance,
      vPrediction: true,
      model,
      stage: stageName,
      onStep: progress,
      signal: o.signal,
    });
    try {
      return tidy(() => {
        const parts: Tensor[] = [];
        for (let g = 0; g < groups; g++) {
          parts.push(slice(frames, 0, g, 1), slice(predicted, 0, g, 1).reshape([3, c, h, w]));
        }
        parts.push(slice(frames, 0, groups, 1));
        return concat(parts, 0);
      });
    } finally {
      predicted.dispose();
    }
  } finally {
    for (const t of [ctx.context, ctxMask, left, right, zeros]) t.dispose();
    unet.dispose();
  }
}

async function decode(
  gpu: Gpu,
  o: ReturnType<typeof validateOptions>,
  folder: Folder,
  file: string,
  config: MoVQConfig,
  latents: Tensor,
  progress: (done: number, total: number) => void,
): Promise<RgbFrame[]> {
  const movq = new MoVQ(config, { encoder: false });
  const ckpt = await openCheckpointIn(folder, file);
  const frames: RgbFrame[] = [];
  const total = latents.shape[0];
  try {
    await movq.load(gpu, ckpt, { dtype: o.dtype });
    await movq.decodeVideo(latents, {
      chunkFrames: o.decodeChunkFrames,
      mode: o.decodeChunkMode,
      onFrames: async (out) => {
        o.signal?.throwIfAborted();
        const [k, ch, hh, ww] = out.shape;
        const data = (await out.read()) as Float32Array;
        const per = ch * hh * ww;
        for (let i = 0; i < k; i++) {
          // pixels = (x + 1) / 2, clipped and truncated to 8 bits by planarToRgb8
          const px = data.subarray(i * per, (i + 1) * per).map((v) => (v + 1) / 2);
          const frame = planarToRgb8(px, ww, hh);
          o.onFrame?.(frame, frames.length);
          frames.push(frame);
        }
        progress(frames.length, total);
      },
    });
  } finally {
    movq.release();
    await ckpt.close();
  }
  return frames;
}
