// What a generate run needs, estimated from the configs before anything is
// loaded, and checked against what the adapter and the machine offer, so
// that a size or frame count that cannot fit is refused up front with the
// numbers instead of ending as a device loss or an out-of-memory mid-run.
//
// The estimate is a floor, not a forecast: the weights at the chosen dtype
// plus the activations no run can do without (each level's output, kept for
// the skip connection, for every row of the guided batch). A run refused
// here cannot succeed; one accepted may still need more.
import { ResourceError, formatBytes } from '../errors.ts';
import { detectRuntime } from '../gpu/device.ts';
import { type MoVQConfig, downFactor, isVideoDecoder } from '../models/movq/config.ts';
import { decodeBindingNeed, decodeCost } from '../models/movq/cost.ts';
import { MoVQ } from '../models/movq/movq.ts';
import { type T5Config, feedForwardKind } from '../models/t5/config.ts';
import { type UNetConfig, downLevels, hiddenChannels } from '../models/unet/config.ts';
import { winogradWorkingBytes } from '../ops/winograd.ts';
import { UNet } from '../models/unet/unet.ts';
import { type Param, type WeightDType, WeightBuilder } from '../nn/weights.ts';
import { numel, storageBytes } from '../tensor/tensor.ts';
import { upstreamChunkFrames } from '../models/movq/chunking.ts';
import type { FrameRate } from './generate.ts';
import type { ModelConfigs } from './weightsFolder.ts';

export interface RunShape {
  width: number;
  height: number;
  fps: FrameRate;
  dtype: WeightDType;
  /** MoVQ frames decoded at once (default: upstream's chunking). */
  decodeChunkFrames?: number;
}

export interface StageEstimate {
  /** A stage of generateVideo (StageName) or generateImage. */
  stage: string;
  /** Device bytes of the stage's weights at the chosen dtype. */
  weightBytes: number;
  /** Device bytes of the activations the stage cannot do without. */
  activationBytes: number;
  /**
   * The largest tensor the stage must bind whole: tensors are split across
   * buffers along rows (frames of the batch) only, so one frame of an
   * activation must fit one binding, except in the MoVQ decoder's levels
   * that run as bands of rows, where one band must.
   */
  rowBytes: number;
  /** What that tensor is, for messages ("one frame's ... f32 activation"). */
  rowWhere: string;
  /** Host bytes the stage holds (the decoded frames). */
  hostBytes: number;
}

function weightBytes(params: readonly Param[], dtype: WeightDType): number {
  let bytes = 0;
  for (const p of params) bytes += storageBytes(dtype === 'f16' && p.allowF16 ? 'f16' : 'f32', numel(p.shape));
  return bytes;
}

/** The T5 encoder streams its blocks: the embedding, two blocks (one loading while one runs) and the projection. */
function textStage(t5: T5Config, unet: UNetConfig, dtype: WeightDType): StageEstimate {
  const bytes = dtype === 'f16' ? 2 : 4;
  const inner = t5.num_heads * t5.d_kv;
  const ff = feedForwardKind(t5.feed_forward_proj).gated ? 3 : 2;
  const block = (4 * t5.d_model * inner + ff * t5.d_model * t5.d_ff) * bytes;
  const projection = t5.d_model * (unet.context_dim ?? 0) * bytes;
  const tokens = 2 * 128; // prompt and negative, 128 tokens each
  const rowBytes = 4 * 128 * Math.max(t5.d_model, t5.d_ff, inner);
  return {
    stage: 'text',
    weightBytes: t5.vocab_size * t5.d_model * 4 + 2 * block + projection,
    activationBytes: 4 * tokens * Math.max(t5.d_model, t5.d_ff, inner) * 3,
    rowBytes,
    rowWhere: `one prompt's T5 block [128, ${Math.max(t5.d_model, t5.d_ff, inner)}] f32 activation`,
    hostBytes: 0,
  };
}

/** A U-Net stage over `rows` latent frames of size h × w (the guided batch: conditional and unconditional rows). */
export function unetStage(stage: string, c: UNetConfig, rows: number, h: number, w: number, dtype: WeightDType): StageEstimate {
  const hidden = hiddenChannels(c);
  let rowBytes = 4 * c.num_channels * h * w;
  let rowWhere = `one frame's input [${c.num_channels}, ${h}, ${w}] f32 activation`;
  let skips = rowBytes;
  let winograd = 0;
  downLevels(c).forEach((level, l) => {
    const lh = Math.ceil(h / 2 ** l);
    const lw = Math.ceil(w / 2 ** l);
    // winogradPays' rule: enough pixels in the batch (channels are 128+ in the released models).
    if (rows * lh * lw >= 4096) winograd = Math.max(winograd, winogradWorkingBytes(hidden[l + 1]));
    const attention = level.selfAttention || level.crossAttention;
    // Attention blocks widen the channels by expansion_ratio in their feed-forward.
    const widest = attention ? hidden[l + 1] * c.expansion_ratio : hidden[l + 1];
    const bytes = 4 * widest * lh * lw;
    if (bytes > rowBytes) {
      rowBytes = bytes;
      rowWhere = `one frame's down level ${l} [${widest}, ${lh}, ${lw}] f32 activation`;
    }
    skips += 4 * hidden[l + 1] * lh * lw * level.numBlocks;
  });
  return {
    stage,
    weightBytes: weightBytes(new UNet(new WeightBuilder(), c).params(), dtype),
    // The skips of every block, the widest tensor in and out of the op making
    // it, and a Winograd conv's working memory at the widest level.
    activationBytes: rows * (skips + 2 * rowBytes) + winograd,
    rowBytes,
    rowWhere,
    hostBytes: 0,
  };
}

/**
 * The MoVQ decode of `frames` latent frames of h × w. Its levels past a
 * binding run as bands of rows, so the binding it needs is the largest of
 * its levels with attention (whole) and of one band of one row and its halo
 * (decodeBindingNeed): for the temporal decoder, of a whole chunk, which
 * every band holds. Its activations are the same bytes banded or not: the
 * bands of one activation together are the activation.
 */
export function decodeStage(c: MoVQConfig, frames: number, h: number, w: number, run: Pick<RunShape, 'width' | 'height' | 'dtype' | 'decodeChunkFrames'>): StageEstimate {
  const cost = decodeCost(c, 1, h, w);
  const video = isVideoDecoder(c);
  const chunk = Math.min(frames, run.decodeChunkFrames ?? (video ? upstreamChunkFrames(frames) : 1));
  const need = decodeBindingNeed(c, video ? chunk : 1, h, w);
  // Frames are read back as planar f32 per chunk and kept as 8-bit RGB.
  const pixels = run.width * run.height;
  return {
    stage: 'decode',
    weightBytes: weightBytes(new MoVQ(c, { encoder: false }).params(), run.dtype),
    activationBytes: chunk * 2 * cost.maxFrameBytes + winogradWorkingBytes(c.ch * Math.max(...c.ch_mult)),
    rowBytes: need.bytes,
    rowWhere: `${video && chunk > 1 ? `the ${chunk}-frame chunk's` : "one frame's"} ${need.where}`,
    hostBytes: frames * 3 * pixels + chunk * 4 * 3 * pixels,
  };
}

/** Frames after each stage: 15 keyframes, then 4n − 3 per interpolation pass. */
export function frameCounts(keyframes: number, fps: FrameRate): { keyframes: number; passes: number[]; out: number } {
  const passes = fps === 'low' ? [] : fps === 'medium' ? [keyframes] : [keyframes, 4 * keyframes - 3];
  const out = passes.length ? 4 * passes[passes.length - 1] - 3 : keyframes;
  return { keyframes, passes, out };
}

/** Per-stage estimates for a run (no GPU, no weights: configs and sizes only). */
export function estimateRun(configs: ModelConfigs, t5: T5Config, run: RunShape): StageEstimate[] {
  const f = downFactor(configs.movq);
  const h = run.height / f;
  const w = run.width / f;
  const frames = frameCounts(configs.keyframe.num_frames ?? 15, run.fps);
  const stages = [textStage(t5, configs.keyframe, run.dtype), unetStage('keyframes', configs.keyframe, 2 * frames.keyframes, h, w, run.dtype)];
  frames.passes.forEach((n, p) => {
    // n − 1 groups, each conditional and unconditional.
    stages.push(unetStage(p === 0 ? 'interpolation 1' : 'interpolation 2', configs.interpolation, 2 * (n - 1), h, w, run.dtype));
  });
  stages.push(decodeStage(configs.movq, frames.out, h, w, run));
  return stages;
}

export interface ResourceLimits {
  /** The adapter's maxStorageBufferBindingSize: a row must fit one binding. */
  maxBinding: number;
  /** The adapter's maxBufferSize: a row must fit one buffer. */
  maxBuffer: number;
  /** Bytes of device memory, when known (a software adapter's is the host's). */
  deviceBytes?: number;
  /** Bytes of host memory available, when known. */
  hostBytes?: number;
  /** Where the memory figures come from, for messages. */
  memorySource?: string;
}

/**
 * Refuses a run that cannot fit, naming the stage and giving the needed and
 * available bytes. With a software adapter device and host memory are the
 * same, so both are counted against it.
 */
export function checkResources(stages: readonly StageEstimate[], limits: ResourceLimits, describe: string): void {
  for (const s of stages) {
    const rowLimit = Math.min(limits.maxBinding, limits.maxBuffer);
    if (s.rowBytes > rowLimit) {
      const which = limits.maxBinding <= limits.maxBuffer ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
      throw new ResourceError(`${describe}: ${s.stage}: ${s.rowWhere}`, s.rowBytes, rowLimit, `the adapter's ${which}; try a smaller --size`);
    }
    const device = s.weightBytes + s.activationBytes;
    if (limits.deviceBytes !== undefined && device + s.hostBytes > limits.deviceBytes) {
      throw new ResourceError(
        `${describe}: ${s.stage}: weights ${formatBytes(s.weightBytes)} + activations ${formatBytes(s.activationBytes)}${s.hostBytes ? ` + frames ${formatBytes(s.hostBytes)}` : ''}`,
        device + s.hostBytes,
        limits.deviceBytes,
        `${limits.memorySource ?? 'memory'}; try a smaller --size, a lower --fps or --dtype f16`,
      );
    }
    if (limits.hostBytes !== undefined && s.hostBytes > limits.hostBytes) {
      throw new ResourceError(`${describe}: ${s.stage}: the decoded frames`, s.hostBytes, limits.hostBytes, `${limits.memorySource ?? 'host memory'}; try a smaller --size or a lower --fps`);
    }
  }
}

/** Limits of an opened device: memory is known on Node (free host memory), and is the device's own with a software adapter. */
export async function resourceLimits(info: { software: boolean; limits: Record<string, number> }): Promise<ResourceLimits> {
  const limits: ResourceLimits = { maxBinding: info.limits.maxStorageBufferBindingSize, maxBuffer: info.limits.maxBufferSize ?? info.limits.maxStorageBufferBindingSize };
  // Deno's process shim also reports versions.node: ask the runtime itself.
  if (detectRuntime() === 'node') {
    const os = await import('node:os');
    limits.hostBytes = os.freemem();
    limits.memorySource = `free host memory (os.freemem, of ${formatBytes(os.totalmem())})`;
    if (info.software) limits.deviceBytes = limits.hostBytes;
  }
  return limits;
}
