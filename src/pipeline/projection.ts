// What a real generation costs, counted rather than run: the U-Nets' forward
// passes are executed on a dry-run GPU (src/gpu/profile.ts: every dispatch is
// counted, none runs, the weights are allocated and never written), T5 and
// the MoVQ decode are counted from their configs. Multiplied by the sampler's
// calls, this gives the floating-point operations and bytes per kernel family
// and stage of a generation at any size; divided by measured throughput, a
// projected time (bench/pipeline.bench.ts).
import type { Gpu } from '../gpu/gpu.ts';
import { type FamilyCount, OpProfile } from '../gpu/profile.ts';
import { decodeCost } from '../models/movq/cost.ts';
import { IMAGE_MOVQ, type MoVQConfig, downFactor } from '../models/movq/config.ts';
import { FLAN_UL2, type T5Config } from '../models/t5/config.ts';
import { type UNetConfig, presetConfig } from '../models/unet/config.ts';
import { type UNetInputs, UNet } from '../models/unet/unet.ts';
import { WeightBuilder } from '../nn/weights.ts';
import { tidy } from '../tensor/scope.ts';
import { Tensor } from '../tensor/tensor.ts';
import { T5_MAX_TOKENS } from '../text/tokenizer.ts';
import type { FrameRate, StageName } from './generate.ts';

export interface GenerationShape {
  width: number;
  height: number;
  fps: FrameRate;
  steps: number;
  /** Guidance > 0 runs the conditional and unconditional passes as one batch of two. */
  guidance: number;
  interpolationGuidance: number;
  /** Text tokens of the context (at most 128). */
  tokens: number;
}

export const REAL_GENERATION: GenerationShape = { width: 512, height: 512, fps: 'medium', steps: 50, guidance: 5, interpolationGuidance: 0.25, tokens: T5_MAX_TOKENS };

export interface StageCost {
  stage: StageName;
  /** Model calls in the stage (sampler steps, T5 layers, decoded frames). */
  calls: number;
  families: Map<string, FamilyCount>;
}

/** Runs `forward` on a dry-run GPU and returns what it dispatched. */
function dryRun(gpu: Gpu, forward: () => void): OpProfile {
  if (gpu.profile) throw new Error('projection: the GPU is already being profiled');
  const profile = new OpProfile(true);
  gpu.profile = profile;
  try {
    tidy(forward);
  } finally {
    gpu.profile = null;
  }
  return profile;
}

/** One forward of a U-Net with never-written weights, counted. */
function unetForward(gpu: Gpu, config: UNetConfig, inputs: (gpu: Gpu) => UNetInputs): OpProfile {
  const unet = new UNet(new WeightBuilder(), config);
  try {
    for (const p of unet.params()) p.set(Tensor.empty(gpu, p.shape, p.allowF16 ? 'f16' : 'f32'));
    return dryRun(gpu, () => unet.forward(inputs(gpu)).dispose());
  } finally {
    unet.dispose();
    // The dry run's buffers (never written, so never backed by memory on a
    // CPU adapter, but GiBs of them) are not kept for a real run.
    gpu.pool.trim();
  }
}

function context(gpu: Gpu, rows: number, tokens: number, dim: number): { context: Tensor; contextMask: Tensor } {
  return { context: Tensor.empty(gpu, [rows, tokens, dim]), contextMask: Tensor.from(gpu, new Int32Array(rows * tokens).fill(1), [rows, tokens], 'i32') };
}

/** T5 encoder flops from its config: projections, gated feed-forward, attention. */
function t5Cost(c: T5Config, tokens: number): Map<string, FamilyCount> {
  const inner = c.num_heads * c.d_kv;
  const ffMatrices = c.feed_forward_proj.startsWith('gated') ? 3 : 2;
  const perLayer = 2 * tokens * (4 * c.d_model * inner + ffMatrices * c.d_model * c.d_ff);
  const attention = 4 * c.num_heads * tokens * tokens * c.d_kv;
  return new Map([
    ['matmul', { dispatches: 0, flops: c.num_layers * perLayer, bytes: 0 }],
    ['attention', { dispatches: 0, flops: c.num_layers * attention, bytes: 0 }],
  ]);
}

function movqCost(c: MoVQConfig, frames: number, h: number, w: number): Map<string, FamilyCount> {
  const cost = decodeCost(c, frames, h, w);
  // conv3d runs on the conv2d kernel family; MoVQ's 1×1 q/k/v convs are matmuls.
  const f = (flops: number): FamilyCount => ({ dispatches: 0, flops, bytes: 0 });
  return new Map([
    ['conv2d', f(cost.byFamily.conv2d + cost.byFamily.conv3d)],
    ['matmul', f(cost.byFamily.linear)],
    ['attention', f(cost.byFamily.attention)],
  ]);
}

function scaled(p: OpProfile, factor: number): Map<string, FamilyCount> {
  const m = new Map<string, FamilyCount>();
  p.addTo(m, factor);
  return m;
}

/**
 * The cost of a generation with the real Kandinsky Video 1.0 models, stage by
 * stage, as generateVideo runs it (one U-Net call per sampler step, the
 * guidance branches batched).
 */
export function costGeneration(gpu: Gpu, g: GenerationShape, movq: MoVQConfig = IMAGE_MOVQ): StageCost[] {
  const keyframe = presetConfig('keyframe');
  const interpolation = presetConfig('interpolation');
  const frames = keyframe.num_frames ?? 15;
  const [h, w] = [g.height / downFactor(movq), g.width / downFactor(movq)];
  const stages: StageCost[] = [{ stage: 'text', calls: FLAN_UL2.num_layers, families: t5Cost(FLAN_UL2, g.tokens) }];

  const videos = g.guidance > 0 ? 2 : 1;
  const step = Math.floor(180 / frames);
  const kf = unetForward(gpu, keyframe, (gpu) => ({
    x: Tensor.empty(gpu, [videos * frames, keyframe.num_channels, h, w]),
    time: new Int32Array(videos).fill(500),
    ...context(gpu, videos, g.tokens, keyframe.context_dim!),
    temporalEmbed: Int32Array.from({ length: videos * frames }, (_, i) => (i % frames) * step),
  }));
  stages.push({ stage: 'keyframes', calls: g.steps, families: scaled(kf, g.steps) });

  let n = frames;
  const passes: [StageName, number][] = g.fps === 'low' ? [] : g.fps === 'medium' ? [['interpolation 1', 3]] : [['interpolation 1', 3], ['interpolation 2', 1]];
  for (const [stage, skip] of passes) {
    const groups = n - 1;
    const rows = (g.interpolationGuidance > 0 ? 2 : 1) * groups;
    const ip = unetForward(gpu, interpolation, (gpu) => ({
      x: Tensor.empty(gpu, [rows, interpolation.num_channels, h, w]),
      time: new Int32Array([500]),
      ...context(gpu, 1, 2, interpolation.context_dim!),
      skipFrames: new Int32Array([skip]),
      numTemporalGroups: groups,
    }));
    stages.push({ stage, calls: g.steps, families: scaled(ip, g.steps) });
    n = 4 * n - 3;
  }
  stages.push({ stage: 'decode', calls: n, families: movqCost(movq, n, h, w) });
  return stages;
}

/** Throughput per kernel family (GFLOP/s), and memory bandwidth (GB/s) for the families counted in bytes. */
export interface Throughput {
  gflops: Readonly<Record<string, number>>;
  gbps: number;
}

/** Compute-bound families: timed by their flops; every other family by the bytes it binds. */
const COMPUTE = new Set(['matmul', 'conv2d', 'conv3d', 'attention']);

/** Seconds per stage: flops / throughput for compute-bound families, bytes / bandwidth for the rest. */
export function projectSeconds(stages: readonly StageCost[], t: Throughput): { stage: StageName; seconds: number; byFamily: Record<string, number> }[] {
  return stages.map((s) => {
    const byFamily: Record<string, number> = {};
    for (const [family, c] of s.families) {
      if (COMPUTE.has(family)) {
        const rate = t.gflops[family === 'conv3d' ? 'conv2d' : family];
        if (!(rate > 0)) throw new Error(`projection: no measured throughput for ${family}`);
        byFamily[family] = c.flops / (rate * 1e9);
      } else {
        byFamily[family] = c.bytes / (t.gbps * 1e9);
      }
    }
    return { stage: s.stage, seconds: Object.values(byFamily).reduce((a, b) => a + b, 0), byFamily };
  });
}
