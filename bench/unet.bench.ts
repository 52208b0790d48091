// U-Net benchmarks (op 'unet_forward'): one full forward of a mid-size
// keyframe U-Net, and the real keyframe model's bottom level (a
// DownSampleBlock 1536 → 3072 with cross, self and temporal attention) at an
// 8×8 latent, both on two videos × 15 frames (the guidance batch), random
// weights. Setup prints the weight bytes and the forward's peak GPU memory;
// with UNET_BENCH_PROFILE=1 it also replays the forward's dispatches one
// kernel family at a time to report each family's share of the time.
import type { Gpu, KernelCall } from '../src/gpu/gpu.ts';
import type { Conditioning } from '../src/models/unet/embeddings.ts';
import { DownSampleBlock } from '../src/models/unet/levels.ts';
import { type UNetConfig, downLevels, parseUNetConfig, presetConfig, upLevels, upPairs } from '../src/models/unet/config.ts';
import { UNet } from '../src/models/unet/unet.ts';
import { type Param, WeightBuilder, type WeightDType } from '../src/nn/weights.ts';
import { silu } from '../src/ops/elementwise.ts';
import { Tensor, numel, storageBytes } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';

const VIDEOS = 2;
const FRAMES = 15;
const TOKENS = 64;

/** Deterministic pseudo-random values in [-1, 1) (xorshift32; test/helpers imports vitest). */
function randomPool(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

const POOL = randomPool(1 << 22, 7);

/** Pool values from `offset` on (wrapping), scaled: cheap to make for billions of weights. */
function values(n: number, scale: number, offset: number): Float32Array {
  const out = new Float32Array(n);
  let j = offset % POOL.length;
  for (let i = 0; i < n; i++) {
    out[i] = POOL[j] * scale;
    if (++j === POOL.length) j = 0;
  }
  return out;
}

/**
 * Uniform weights with variance 1/fan_in (so activations keep their scale),
 * small biases, merges 0.5, affine norm weights 1; scaled down in the
 * conditional norms' context_mlp so that scale + 1 stays near 1.
 */
function randomWeights(gpu: Gpu, params: readonly Param[], dtype: WeightDType): void {
  params.forEach((p, i) => {
    const n = numel(p.shape);
    const offset = (i * 7919) % POOL.length;
    let data: Float32Array;
    if (p.shape.length >= 2) {
      const fanIn = numel(p.shape.slice(1)) || 1;
      data = values(n, Math.sqrt(3 / fanIn) * (p.key.includes('context_mlp') ? 0.5 : 1), offset);
    } else if (p.key.endsWith('merge')) data = new Float32Array(n).fill(0.5);
    else if (p.key.endsWith('weight')) data = new Float32Array(n).fill(1);
    else data = values(n, 0.01, offset);
    p.set(Tensor.from(gpu, data, p.shape, dtype === 'f16' && p.allowF16 ? 'f16' : 'f32', { persistent: true }));
  });
}

function weightBytes(params: readonly Param[], dtype: WeightDType): number {
  return params.reduce((b, p) => b + storageBytes(dtype === 'f16' && p.allowF16 ? 'f16' : 'f32', numel(p.shape)), 0);
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Runs one forward with the pool's peak reset and prints weights, peak live and peak device bytes. */
async function reportMemory(gpu: Gpu, label: string, weights: number, forward: () => Tensor): Promise<void> {
  await gpu.sync();
  // Free buffers left by earlier cases (and the harness's peak measurement) would count as device bytes.
  gpu.pool.trim();
  gpu.pool.resetPeak();
  const before = gpu.pool.stats();
  const out = forward();
  await gpu.sync();
  const s = gpu.pool.stats();
  const outBytes = out.byteLength;
  out.dispose();
  process.stdout.write(
    `[${label}] weights ${mib(weights)}; forward peak live ${mib(s.peakLiveBytes)} ` +
      `(${mib(s.peakLiveBytes - before.liveBytes)} above weights+inputs, output ${mib(outBytes)}), peak device ${mib(s.peakDeviceBytes)}\n`,
  );
}

interface Recorded {
  call: KernelCall;
  bindings: Parameters<Gpu['dispatch']>[1];
  workgroups: readonly number[];
}

/**
 * Debug profile: records one forward's dispatches, then replays them family
 * by family (kernel file name) with a sync around each family, so each
 * family's time is measured alone. The recorded buffers stay valid because
 * the pool keeps released buffers (nothing is trimmed meanwhile); their
 * contents are stale, which does not change the work done.
 */
async function profile(gpu: Gpu, label: string, forward: () => Tensor, repeats = 3): Promise<void> {
  const recorded: Recorded[] = [];
  const dispatch = gpu.dispatch.bind(gpu);
  gpu.dispatch = (call, bindings, workgroups) => {
    recorded.push({ call, bindings, workgroups: [...workgroups] });
    dispatch(call, bindings, workgroups);
  };
  try {
    forward().dispose();
  } finally {
    gpu.dispatch = dispatch;
  }
  await gpu.sync();
  const families = new Map<string, Recorded[]>();
  for (const r of recorded) {
    const name = `${r.call.kernel}:${r.call.entry ?? 'main'}`;
    families.set(name, [...(families.get(name) ?? []), r]);
  }
  const times: [string, number, number][] = [];
  for (const [name, rs] of families) {
    let best = Infinity;
    for (let k = 0; k < repeats; k++) {
      const t0 = performance.now();
      for (const r of rs) dispatch(r.call, r.bindings, r.workgroups);
      await gpu.sync();
      best = Math.min(best, performance.now() - t0);
    }
    times.push([name, best, rs.length]);
  }
  const total = times.reduce((a, [, ms]) => a + ms, 0);
  times.sort((a, b) => b[1] - a[1]);
  process.stdout.write(`[${label}] ${recorded.length} dispatches; per kernel family (replayed alone, sum ${total.toFixed(1)} ms):\n`);
  for (const [name, ms, n] of times) process.stdout.write(`    ${name.padEnd(28)} ${ms.toFixed(2).padStart(10)} ms  ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${n} dispatches\n`);
}

/**
 * Approximate FLOPs of a forward: every weight matrix or kernel costs
 * 2·numel per output position it is applied at (conv k×k and Conv3d
 * included), plus 4·keys·C per query for the attention core. `pixels(key)`
 * gives the positions per row where a key's weight runs; the conditional
 * norms' context_mlp runs once per condition row and the cross attentions'
 * to_key/to_value once per context token. The Blocks next to a resampling
 * conv that run at the other resolution are counted at the level's (~2% off).
 */
function estimateFlops(
  params: readonly Param[],
  o: { rows: number; condRows: number; tokens: number; pixels: (key: string) => number; attention: { queries: number; keys: number; channels: number }[] },
): number {
  let flops = 0;
  for (const p of params) {
    if (p.shape.length < 2) continue;
    const n = numel(p.shape);
    if (/(^feature_pooling|\.\d+\.1)\.attention\.to_(key|value)\.weight$/.test(p.key)) flops += 2 * n * o.condRows * o.tokens;
    else if (p.key.includes('context_mlp') || /^(to_time_embed|feature_pooling)\./.test(p.key)) flops += 2 * n * o.condRows;
    else if (p.key.startsWith('to_temporal_embed.')) flops += 2 * n * o.rows;
    // Resampling convs: ConvTranspose2d k2 s2 reads a quarter of its level's pixels, Conv2d k2 s2 writes a quarter.
    else if (/(^|\.)(shortcut_)?(up|down)_sample\.weight$/.test(p.key)) flops += (2 * n * o.rows * o.pixels(p.key)) / 4;
    else flops += 2 * n * o.rows * o.pixels(p.key);
  }
  for (const a of o.attention) flops += 4 * a.queries * a.keys * a.channels;
  return flops;
}

const profiling = () => process.env.UNET_BENCH_PROFILE === '1';

// Mid-size keyframe model: 3 levels 64/128/256 channels, cross and self
// attention on levels 1-2, temporal blocks, 16×16 latents.
const MID: UNetConfig = parseUNetConfig(
  {
    model_channels: 64,
    init_channels: 32,
    num_channels: 4,
    out_channels: 4,
    time_embed_dim: 256,
    context_dim: 512,
    groups: 32,
    head_dim: 64,
    dim_mult: [1, 2, 4],
    num_blocks: [2, 2, 2],
    add_cross_attention: [false, true, true],
    add_self_attention: [false, true, true],
    num_frames: FRAMES,
  },
  'bench/unet.bench.ts',
);

/** The attentions of a full keyframe U-Net forward, per level. */
function unetAttention(c: UNetConfig, rows: number, size: number): { queries: number; keys: number; channels: number }[] {
  const out: { queries: number; keys: number; channels: number }[] = [];
  const frames = c.num_frames ?? 0;
  const levelPixels = (l: number) => (size / 2 ** l) ** 2;
  downLevels(c).forEach((p, l) => {
    const q = rows * levelPixels(l);
    if (p.selfAttention) out.push({ queries: q, keys: levelPixels(l), channels: p.inChannels }, { queries: q, keys: frames, channels: p.inChannels });
    if (p.crossAttention) for (let j = 0; j < p.numBlocks; j++) out.push({ queries: q, keys: TOKENS, channels: p.outChannels });
  });
  const last = c.dim_mult.length - 1;
  upLevels(c).forEach((p, i) => {
    const q = rows * levelPixels(last - i);
    if (p.crossAttention) for (const [a] of upPairs(p)) out.push({ queries: q, keys: TOKENS, channels: a });
    if (p.selfAttention) out.push({ queries: q, keys: levelPixels(last - i), channels: p.outChannels }, { queries: q, keys: frames, channels: p.outChannels });
  });
  return out;
}

function fullForwardCase(config: UNetConfig, size: number, dtype: WeightDType): BenchCase {
  const rows = VIDEOS * FRAMES;
  const last = config.dim_mult.length - 1;
  const flops = estimateFlops(new UNet(new WeightBuilder(), config).params(), {
    rows,
    condRows: VIDEOS,
    tokens: TOKENS,
    pixels: (key) => {
      const m = /^(down|up)_samples\.(\d+)\./.exec(key);
      const level = !m ? 0 : m[1] === 'down' ? Number(m[2]) : last - Number(m[2]);
      return (size / 2 ** level) ** 2;
    },
    attention: unetAttention(config, rows, size),
  });
  return {
    flops,
    op: 'unet_forward',
    explicit: true,
    shape: `${rows}x${config.num_channels}x${size}x${size}`,
    dtype,
    variant: `mid-size keyframe U-Net mc ${config.model_channels}, dim_mult ${config.dim_mult.join('/')}, ${VIDEOS} videos x ${FRAMES} frames, ${TOKENS} tokens`,
    async setup(gpu): Promise<BenchRun> {
      const unet = new UNet(new WeightBuilder(), config);
      randomWeights(gpu, unet.params(), dtype);
      const x = Tensor.from(gpu, values(rows * config.num_channels * size * size, 1, 11), [rows, config.num_channels, size, size]);
      // Row sharing as the pipeline does it: one time/context row per video.
      const context = Tensor.from(gpu, values(VIDEOS * TOKENS * config.context_dim!, 1, 13), [VIDEOS, TOKENS, config.context_dim!]);
      const mask = Tensor.from(gpu, Int32Array.from({ length: VIDEOS * TOKENS }, (_, i) => Number(i % TOKENS < 20)), [VIDEOS, TOKENS], 'i32');
      const time = Int32Array.from({ length: VIDEOS }, () => 980);
      const temporalEmbed = Int32Array.from({ length: rows }, (_, i) => (i % FRAMES) * 12);
      const forward = () => unet.forward({ x, time, context, contextMask: mask, temporalEmbed });
      await reportMemory(gpu, 'unet_forward mid-size', weightBytes(unet.params(), dtype), forward);
      if (profiling()) await profile(gpu, 'unet_forward mid-size', forward);
      return {
        run: () => forward().dispose(),
        dispose: () => {
          for (const t of [x, context, mask]) t.dispose();
          unet.dispose();
        },
      };
    },
  };
}

/** The real keyframe model's bottom down level (level 3: 1536 → 3072, no down-sampling). */
function realLevelCase(size: number, dtype: WeightDType): BenchCase {
  const config = presetConfig('keyframe');
  const level = 3;
  const plan = downLevels(config)[level];
  const rows = VIDEOS * FRAMES;
  const pixels = size * size;
  const w = new WeightBuilder();
  const block = new DownSampleBlock(w.pp('down_samples').pp(level), config, plan);
  const flops = estimateFlops(w.params(), {
    rows,
    condRows: VIDEOS,
    tokens: TOKENS,
    pixels: () => pixels,
    attention: [
      { queries: rows * pixels, keys: pixels, channels: plan.inChannels },
      { queries: rows * pixels, keys: FRAMES, channels: plan.inChannels },
      ...Array.from({ length: plan.numBlocks }, () => ({ queries: rows * pixels, keys: TOKENS, channels: plan.outChannels })),
    ],
  });
  return {
    flops,
    op: 'unet_forward',
    explicit: true,
    shape: `${rows}x${plan.inChannels}x${size}x${size}`,
    dtype,
    variant: `real keyframe down level ${level} (${plan.inChannels}->${plan.outChannels}, ${plan.numBlocks} blocks, cross+self+temporal), ${TOKENS} tokens`,
    async setup(gpu): Promise<BenchRun> {
      randomWeights(gpu, w.params(), dtype);
      const ted = config.time_embed_dim;
      const made: Tensor[] = [];
      const rand = (shape: number[], seed: number, scale = 1) => {
        const t = Tensor.from(gpu, values(numel(shape), scale, seed), shape);
        made.push(t);
        return t;
      };
      const x = rand([rows, plan.inChannels, size, size], 21);
      const timeSilu = silu(rand([VIDEOS, ted], 22));
      const temporalSilu = silu(rand([rows, ted], 23));
      const mask = Tensor.from(gpu, Int32Array.from({ length: VIDEOS * TOKENS }, (_, i) => Number(i % TOKENS < 20)), [VIDEOS, TOKENS], 'i32');
      made.push(timeSilu, temporalSilu, mask);
      const cond: Conditioning = {
        timeSilu,
        temporalSilu,
        context: rand([VIDEOS, TOKENS, config.context_dim!], 24),
        contextMask: mask,
        frames: FRAMES,
        blockGroups: null,
      };
      const forward = () => block.forward(x, cond);
      await reportMemory(gpu, 'unet_forward real level 3', weightBytes(w.params(), dtype), forward);
      if (profiling()) await profile(gpu, 'unet_forward real level 3', forward, 1);
      return {
        run: () => forward().dispose(),
        dispose: () => {
          for (const t of made) t.dispose();
          for (const p of w.params()) p.release();
        },
      };
    },
  };
}

export const benches: BenchCase[] = [fullForwardCase(MID, 16, 'f32'), realLevelCase(8, 'f16')];
