// The Kandinsky U-Net (spec §4, §6): text-to-image (Kandinsky 3.0), keyframe
// (Kandinsky Video 1.0, temporal blocks or the paper's variants) and
// interpolation models, told apart by their config. Construction declares
// every parameter by its upstream key (synchronous, no GPU memory); weights
// load separately (loadUNet / loadWeights); forward records the GPU work
// synchronously inside tidy, so only its output outlives it.
import type { Gpu } from '../../gpu/gpu.ts';
import { ShapeError } from '../../errors.ts';
import type { Checkpoint } from '../../io/checkpoint.ts';
import { Conv2d, GroupNorm } from '../../nn/layers.ts';
import { type Param, WeightBuilder, type WeightDType, loadWeights, releaseWeights } from '../../nn/weights.ts';
import { add, lerp, mul, silu } from '../../ops/elementwise.ts';
import { concat, embedding } from '../../ops/layout.ts';
import { tidy } from '../../tensor/scope.ts';
import { Tensor, shapeString } from '../../tensor/tensor.ts';
import { AttentionPolling } from './attention.ts';
import { replace } from './blocks.ts';
import { type UNetConfig, downLevels, temporalLayers, upLevels } from './config.ts';
import { type Conditioning, EmbeddingMLP } from './embeddings.ts';
import { DownSampleBlock, UpSampleBlock } from './levels.ts';

/** Integer per-row inputs may come as host arrays (uploaded) or i32 tensors. */
export type IntInput = Tensor | Int32Array;

export interface UNetInputs {
  /** [N, num_channels, H, W] f32; N = videos × frames (or × groups), frames of a video contiguous. */
  x: Tensor;
  /** Diffusion times [R] with N % R = 0 (R = N as upstream; see Conditioning for row sharing). */
  time: IntInput;
  /** Text context [R, L, context_dim]. Required when the model has a context_dim. */
  context?: Tensor | null;
  /** [R, L] i32, 1 = attend (upstream's bool mask); null attends to every token. */
  contextMask?: Tensor | null;
  /** Keyframe model: frame positions [N] (upstream: arange(0, 180, 180 // T) per video). */
  temporalEmbed?: IntInput | null;
  /** Interpolation model: [R] indices into skip_embeddings (0..19). */
  skipFrames?: IntInput | null;
  /** Interpolation model: G, the groups per video along dim 0. */
  numTemporalGroups?: number | null;
}

/** [perturbation_to_time_embed, time_embed_merge, skip_merge, skip_embeddings]: the interpolation model's extra embeddings. */
interface InterpolationEmbeds {
  perturbation: EmbeddingMLP;
  timeEmbedMerge: Param;
  skipMerge: Param;
  skipEmbeddings: Param;
}

const SKIP_EMBEDDINGS = 20;

export class UNet {
  readonly weights: WeightBuilder;
  private readonly toTimeEmbed: EmbeddingMLP;
  private readonly featurePooling: AttentionPolling | null;
  private readonly toTemporalEmbed: EmbeddingMLP | null;
  private readonly interpolation: InterpolationEmbeds | null;
  private readonly inLayer: Conv2d;
  private readonly downSamples: DownSampleBlock[];
  private readonly upSamples: UpSampleBlock[];
  private readonly outNorm: GroupNorm;
  private readonly outConv: Conv2d;

  constructor(
    w: WeightBuilder,
    readonly config: UNetConfig,
  ) {
    const c = config;
    this.weights = w;
    const embed = (name: string) => new EmbeddingMLP(w.pp(name), { sinDim: c.init_channels, embedDim: c.time_embed_dim });
    this.toTimeEmbed = embed('to_time_embed');
    this.featurePooling =
      c.context_dim !== null ? new AttentionPolling(w.pp('feature_pooling'), { timeEmbedDim: c.time_embed_dim, contextDim: c.context_dim, headDim: c.head_dim }) : null;
    this.toTemporalEmbed = c.num_frames !== null ? embed('to_temporal_embed') : null;
    this.interpolation = c.interpolation
      ? {
          perturbation: embed('perturbation_to_time_embed'),
          timeEmbedMerge: w.param('time_embed_merge', [1]),
          skipMerge: w.param('skip_merge', [1]),
          skipEmbeddings: w.pp('skip_embeddings').param('weight', [SKIP_EMBEDDINGS, c.time_embed_dim]),
        }
      : null;
    this.inLayer = new Conv2d(w.pp('in_layer'), { inChannels: c.num_channels, outChannels: c.init_channels, kernel: 3, padding: 1 });
    this.downSamples = downLevels(c).map((plan, l) => new DownSampleBlock(w.pp('down_samples').pp(l), c, plan));
    this.upSamples = upLevels(c).map((plan, l) => new UpSampleBlock(w.pp('up_samples').pp(l), c, plan));
    const out = w.pp('out_layer');
    this.outNorm = new GroupNorm(out.pp(0), { groups: c.groups, channels: c.init_channels, eps: 1e-5 });
    this.outConv = new Conv2d(out.pp(2), { inChannels: c.init_channels, outChannels: c.out_channels, kernel: 3, padding: 1 });
  }

  /** Every declared parameter, upstream key order not guaranteed. */
  params(): Param[] {
    return this.weights.params();
  }

  parameterCount(): number {
    return this.weights.parameterCount();
  }

  /** Frees the weights' GPU memory. */
  dispose(): void {
    releaseWeights(this.params());
  }

  /** The model's prediction [N, out_channels, H, W]. */
  forward(inputs: UNetInputs): Tensor {
    return tidy(() => {
      const cond = this.conditioning(inputs);
      let h = this.inLayer.forward(inputs.x);
      const skips: Tensor[] = [];
      const last = this.downSamples.length - 1;
      this.downSamples.forEach((down, l) => {
        const next = down.forward(h, cond);
        // Level 0 reads in_layer's output; every later level reads a skip, which its up level still needs.
        if (l === 0) h.dispose();
        if (l !== last) skips.push(next);
        h = next;
      });
      this.upSamples.forEach((up, l) => {
        if (l !== 0) {
          const skip = skips.pop()!;
          h = replace(h, concat([h, skip], 1));
          skip.dispose();
        }
        h = replace(h, up.forward(h, cond));
      });
      return this.outConv.forward(replace(h, this.outNorm.forward(h, { silu: true })));
    });
  }

  /** Embeddings and context for every block, with the inputs' shapes checked. */
  private conditioning(inputs: UNetInputs): Conditioning {
    const c = this.config;
    const { x } = inputs;
    const op = 'UNet.forward';
    if (x.rank !== 4 || x.shape[1] !== c.num_channels) throw new ShapeError(op, `x must be [N, ${c.num_channels}, H, W], got ${shapeString(x.shape)}`);
    const [n, , height, width] = x.shape;
    const scale = 2 ** (c.dim_mult.length - 1);
    if (height % scale !== 0 || width % scale !== 0) {
      throw new ShapeError(op, `H×W = ${height}×${width} must be multiples of ${scale} for ${c.dim_mult.length} levels`);
    }
    const gpu = x.gpu;
    const time = intTensor(gpu, op, 'time', inputs.time);
    const rows = time.shape[0];
    if (rows === 0 || n % rows !== 0) throw new ShapeError(op, `time has ${rows} rows, which must divide x's ${n} rows`);

    let te = this.toTimeEmbed.forward(time);
    const context = inputs.context ?? null;
    const mask = inputs.contextMask ?? null;
    if (c.context_dim !== null) {
      if (!context) throw new ShapeError(op, 'this model needs a context');
      if (context.rank !== 3 || context.shape[0] !== rows || context.shape[2] !== c.context_dim) {
        throw new ShapeError(op, `context must be [${rows}, L, ${c.context_dim}] (one row per time row), got ${shapeString(context.shape)}`);
      }
      if (mask && (mask.dtype !== 'i32' || mask.rank !== 2 || mask.shape[0] !== rows || mask.shape[1] !== context.shape[1])) {
        throw new ShapeError(op, `context_mask must be i32 [${rows}, ${context.shape[1]}], got ${mask.dtype} ${shapeString(mask.shape)}`);
      }
      te = replace(te, this.featurePooling!.forward(te, context, mask));
    } else if (context) {
      throw new ShapeError(op, 'this model has no context_dim, but a context was given');
    }

    let temporalSilu: Tensor | null = null;
    if (c.num_frames !== null) {
      if (n % c.num_frames !== 0) throw new ShapeError(op, `${n} rows do not split into videos of ${c.num_frames} frames`);
      if (!inputs.temporalEmbed) throw new ShapeError(op, 'the keyframe model needs temporal_embed (frame positions)');
      const positions = intTensor(gpu, op, 'temporal_embed', inputs.temporalEmbed);
      if (positions.shape[0] !== n) throw new ShapeError(op, `temporal_embed must have one position per row (${n}), got ${shapeString(positions.shape)}`);
      temporalSilu = tidy(() => silu(this.toTemporalEmbed!.forward(positions)));
    }

    const groups = inputs.numTemporalGroups ?? null;
    if (groups !== null) {
      if (!this.interpolation) throw new ShapeError(op, 'num_temporal_groups is for the interpolation model only');
      if (!Number.isInteger(groups) || groups < 1 || n % groups !== 0) throw new ShapeError(op, `${n} rows do not split into videos of ${groups} temporal groups`);
      if (!inputs.skipFrames) throw new ShapeError(op, 'the interpolation model needs skip_frames');
      const e = this.interpolation;
      te = replace(
        te,
        tidy(() => {
          // Upstream embeds zeros, one per row; every row is the same, so one row broadcasts.
          const perturbation = e.perturbation.forward(Tensor.from(gpu, [0], [1], 'i32'));
          const merged = lerp(te, perturbation, e.timeEmbedMerge.t); // m·P + (1 − m)·te
          const skips = inputs.skipFrames instanceof Int32Array ? inputs.skipFrames : intTensor(gpu, op, 'skip_frames', inputs.skipFrames!);
          const skipEmbed = embedding(skips, e.skipEmbeddings.t);
          if (skipEmbed.shape[0] !== rows) throw new ShapeError(op, `skip_frames must have one entry per time row (${rows}), got ${skipEmbed.shape[0]}`);
          return add(merged, mul(skipEmbed, e.skipMerge.t));
        }),
      );
    }

    return {
      timeSilu: replace(te, silu(te)),
      temporalSilu,
      context: c.context_dim !== null ? context : null,
      contextMask: c.context_dim !== null ? mask : null,
      frames: c.num_frames,
      // The Blocks' temporal convs: over the frames (temporal layers) or the groups (interpolation).
      blockGroups: temporalLayers(c) ? c.num_frames : groups,
    };
  }
}

/** An i32 [n] tensor from a host array (uploaded inside the caller's scope) or a tensor (checked). */
function intTensor(gpu: Gpu, op: string, name: string, v: IntInput): Tensor {
  if (v instanceof Int32Array) return Tensor.from(gpu, v, [v.length], 'i32');
  if (v.dtype !== 'i32' || v.rank !== 1) throw new ShapeError(op, `${name} must be i32 [rows], got ${v.dtype} ${shapeString(v.shape)}`);
  return v;
}

export interface LoadUNetOptions {
  /** Storage of weight matrices and kernels (compute stays f32). */
  dtype?: WeightDType;
  /**
   * Prefix of the U-Net's keys in the checkpoint: 'unet.' for upstream's
   * `{'unet', 'projections', 'null_embedding'}` checkpoints (.pt or their
   * flattened safetensors), '' for a bare state dict. Default: detected
   * from the keys.
   */
  prefix?: string;
  onProgress?: (done: number, total: number) => void;
}

/** The prefix under which a checkpoint holds the U-Net: '' or 'unet.'. */
export function detectUNetPrefix(ckpt: Checkpoint): string {
  if (ckpt.get('in_layer.weight')) return '';
  if (ckpt.get('unet.in_layer.weight')) return 'unet.';
  return '';
}

/**
 * Builds the U-Net and loads it strictly: a missing, unexpected (under the
 * prefix) or mis-shaped key is a WeightError listing every such key, raised
 * before anything is uploaded. Other entries of the checkpoint (projections,
 * null_embedding) are not the U-Net's and are left alone.
 */
export async function loadUNet(gpu: Gpu, config: UNetConfig, ckpt: Checkpoint, options: LoadUNetOptions = {}): Promise<UNet> {
  const unet = new UNet(new WeightBuilder(), config);
  const prefix = options.prefix ?? detectUNetPrefix(ckpt);
  try {
    await loadWeights(gpu, unet.params(), ckpt, { dtype: options.dtype ?? 'f32', prefix, onProgress: options.onProgress });
  } catch (e) {
    unet.dispose();
    throw e;
  }
  return unet;
}
