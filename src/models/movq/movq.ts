// MoVQ (upstream `movq.py` MoVQ): encoder + quant_conv, post_quant_conv +
// decoder. There is no quantizer: upstream's MoVQ has none and loads its
// checkpoints strictly, so they hold no `quantize.*` keys; `encode` returns
// the continuous latent (encoder + quant_conv), as upstream's encode does.
//
// Memory: the ops bind every activation whole, and a tensor splits across
// buffers only along dim 0, so one frame's activation must fit one storage
// binding (maxStorageBufferBindingSize, 128 MiB on lavapipe). The encoder
// and the image decoder run as many frames at a time as fit. Decoder levels
// past a binding run as bands of rows (bands.ts): the image decoder then
// decodes one frame at a time, the temporal decoder its whole chunk in each
// band. Both check before recording anything and throw DeviceLimitError
// naming the activation and its size where even that cannot fit (a level
// with attention past a binding). Long videos stream through decodeVideo.
import { DeviceLimitError, ShapeError } from '../../errors.ts';
import type { Gpu } from '../../gpu/gpu.ts';
import type { Checkpoint } from '../../io/checkpoint.ts';
import { Conv2d } from '../../nn/layers.ts';
import { type LoadOptions, type Param, WeightBuilder, loadWeights, releaseWeights } from '../../nn/weights.ts';
import { affine, axpby } from '../../ops/elementwise.ts';
import { concat, slice } from '../../ops/layout.ts';
import { keep, tidy } from '../../tensor/scope.ts';
import { type Tensor, shapeString } from '../../tensor/tensor.ts';
import { type ChunkMode, overlapWindows, splitFrames, upstreamChunkFrames } from './chunking.ts';
import { type MoVQConfig, downFactor, isVideoDecoder } from './config.ts';
import { decodeBands } from './bands.ts';
import { type MoVQCost, decodeCost, encodeCost } from './cost.ts';
import { Decoder } from './decoder.ts';
import { Encoder } from './encoder.ts';

export interface MoVQParts {
  /** Build encoder + quant_conv (default true). */
  encoder?: boolean;
  /** Build post_quant_conv + decoder (default true). */
  decoder?: boolean;
}

export interface BatchOptions {
  /**
   * Frames run together where frames are independent (encoder, image
   * decoder). Default: as many as fit one storage binding.
   */
  batchFrames?: number;
}

export interface DecodeVideoOptions {
  /**
   * Frames per chunk. Temporal decoder: each chunk is decoded as its own
   * video; default upstream's ceil(N / (N // 4)). Image decoder: frames per
   * batch (frames are independent, so this only trades speed for memory).
   */
  chunkFrames?: number;
  /** Temporal decoder: 'upstream' (default) or 'overlap' (see chunking.ts). Ignored by the image decoder. */
  mode?: ChunkMode;
  /** 'overlap': frames shared by consecutive windows (default min(2, chunkFrames − 1)). */
  overlap?: number;
  /**
   * Receives the decoded frames [n, out_ch, H, W] in order, `first` = index
   * of frames[0]. The tensor is disposed when the callback's promise settles:
   * read or copy it there.
   */
  onFrames: (frames: Tensor, first: number) => void | Promise<void>;
}

const MiB = 1024 * 1024;

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

export class MoVQ {
  readonly weights = new WeightBuilder();
  readonly encoder: Encoder | null;
  readonly quant_conv: Conv2d | null;
  readonly post_quant_conv: Conv2d | null;
  readonly decoder: Decoder | null;

  constructor(
    readonly config: MoVQConfig,
    readonly parts: MoVQParts = {},
  ) {
    const w = this.weights;
    const z = config.z_channels;
    const oneByOne = { inChannels: z, outChannels: z, kernel: 1 };
    const withEncoder = parts.encoder !== false;
    const withDecoder = parts.decoder !== false;
    this.encoder = withEncoder ? new Encoder(w.pp('encoder'), config) : null;
    this.quant_conv = withEncoder ? new Conv2d(w.pp('quant_conv'), oneByOne) : null;
    this.post_quant_conv = withDecoder ? new Conv2d(w.pp('post_quant_conv'), oneByOne) : null;
    this.decoder = withDecoder ? new Decoder(w.pp('decoder'), config) : null;
  }

  /** True when decode treats its batch as one video (upstream main's MOVQDecoder). */
  get isVideo(): boolean {
    return isVideoDecoder(this.config);
  }

  params(): Param[] {
    return this.weights.params();
  }

  /**
   * Loads strictly: every declared key must be there with its shape, and any
   * other key is an error, except those of parts not built (a decoder-only
   * model loads from a full movq.pt) and `options.ignore`.
   */
  async load(gpu: Gpu, ckpt: Checkpoint, options: LoadOptions = {}): Promise<void> {
    const skip = [...(this.encoder ? [] : ['encoder.', 'quant_conv.']), ...(this.decoder ? [] : ['decoder.', 'post_quant_conv.'])];
    const ignore = (k: string) => skip.some((p) => k.startsWith(p)) || (options.ignore?.(k) ?? false);
    await loadWeights(gpu, this.params(), ckpt, { ...options, ignore });
  }

  /** Frees the weights. Recorded work is submitted first: it may still read them. */
  release(): void {
    const params = this.params();
    // Weight buffers are destroyed at once (exact-size pool buffers), and a
    // destroyed buffer in a later submit is a validation error.
    params.find((p) => p.loaded)?.t.gpu.flush();
    releaseWeights(params);
  }

  private requireLatent(op: string, t: Tensor, channels: number): void {
    if (t.rank !== 4 || t.shape[1] !== channels || t.dtype !== 'f32') {
      throw new ShapeError(op, `needs f32 [N, ${channels}, H, W], got ${t.dtype} ${shapeString(t.shape)}`);
    }
  }

  /**
   * Frames per call that keep every activation within one storage binding;
   * throws DeviceLimitError when not even one frame fits (decode tiles then).
   */
  private framesThatFit(gpu: Gpu, cost: MoVQCost, what: string): number {
    const max = gpu.maxBinding;
    if (cost.maxFrameBytes > max) {
      throw new DeviceLimitError(
        'maxStorageBufferBindingSize',
        cost.maxFrameBytes,
        max,
        `${what}: one frame's largest activation, ${cost.maxFrameWhere} f32, is ${mib(cost.maxFrameBytes)} (limit ${mib(max)}); encode it in tiles`,
      );
    }
    return Math.max(1, Math.floor(max / cost.maxFrameBytes));
  }

  /** Runs fn on batches of frames of x (dim 0) and concatenates the results. */
  private batched(x: Tensor, batch: number, fn: (x: Tensor) => Tensor): Tensor {
    const n = x.shape[0];
    if (batch >= n) return fn(x);
    return tidy(() => {
      const outs = splitFrames(n, batch).map((r) => tidy(() => fn(slice(x, 0, r.start, r.length))));
      return concat(outs, 0);
    });
  }

  private requireOutputFits(gpu: Gpu, shape: number[], what: string): void {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    if (bytes > gpu.maxBinding) {
      throw new DeviceLimitError('maxStorageBufferBindingSize', bytes, gpu.maxBinding, `${what}: the output ${shapeString(shape)} is ${mib(bytes)}; stream the frames with decodeVideo`);
    }
  }

  /** x [N, in_channels, H, W] in [−1, 1] → latent [N, z, H/f, W/f] (encoder + quant_conv). */
  encode(x: Tensor, options: BatchOptions = {}): Tensor {
    const c = this.config;
    if (!this.encoder || !this.quant_conv) throw new ShapeError('MoVQ.encode', 'this MoVQ was built without its encoder');
    if (c.double_z) {
      throw new ShapeError('MoVQ.encode', 'double_z is true: conv_out gives 2·z channels that quant_conv (z → z) cannot take (upstream fails the same way; the released configs say false)');
    }
    this.requireLatent('MoVQ.encode', x, c.in_channels);
    const [, , h, w] = x.shape;
    const fit = this.framesThatFit(x.gpu, encodeCost(c, 1, h, w), `MoVQ.encode of a ${h}×${w} frame`);
    return this.batched(x, options.batchFrames ?? fit, (xb) => tidy(() => this.quant_conv!.forward(this.encoder!.forward(xb))));
  }

  /**
   * Image decoder: frames per call, as many as fit one storage binding
   * whole, else one (its high-resolution levels banded). Throws
   * DeviceLimitError when not even that fits.
   */
  private decodeFramesThatFit(gpu: Gpu, h: number, w: number): number {
    const cost = decodeCost(this.config, 1, h, w);
    if (cost.maxFrameBytes <= gpu.maxBinding) return Math.floor(gpu.maxBinding / cost.maxFrameBytes);
    decodeBands(this.config, 1, h, w, gpu.maxBinding);
    return 1;
  }

  /**
   * quant [N, z, h, w] → images [N, out_ch, h·f, w·f] in about [−1, 1].
   * Image decoder: N independent frames (run in batches that fit). Temporal
   * decoder: ONE video of N frames, as upstream's decode; long videos go
   * through decodeVideo, which chunks them as upstream's pipeline does.
   */
  decode(quant: Tensor, options: BatchOptions = {}): Tensor {
    const c = this.config;
    if (!this.decoder || !this.post_quant_conv) throw new ShapeError('MoVQ.decode', 'this MoVQ was built without its decoder');
    this.requireLatent('MoVQ.decode', quant, c.z_channels);
    const [n, , h, w] = quant.shape;
    const f = downFactor(c);
    this.requireOutputFits(quant.gpu, [n, c.out_ch, h * f, w * f], 'MoVQ.decode');
    const run = (q: Tensor) => tidy(() => this.decoder!.forward(this.post_quant_conv!.forward(q), q));
    if (!this.isVideo) return this.batched(quant, options.batchFrames ?? this.decodeFramesThatFit(quant.gpu, h, w), run);
    decodeBands(c, n, h, w, quant.gpu.maxBinding);
    return run(quant);
  }

  /**
   * Decodes a latent video [N, z, h, w] chunk by chunk and hands the frames
   * to `onFrames` in order, so only one chunk's activations and frames are
   * on the GPU at a time (57 or 225 frames never are at once).
   */
  async decodeVideo(latents: Tensor, options: DecodeVideoOptions): Promise<void> {
    const c = this.config;
    if (!this.decoder) throw new ShapeError('MoVQ.decodeVideo', 'this MoVQ was built without its decoder');
    this.requireLatent('MoVQ.decodeVideo', latents, c.z_channels);
    const [n, , h, w] = latents.shape;
    if (n === 0) return;
    const size = options.chunkFrames ?? (this.isVideo ? upstreamChunkFrames(n) : Math.min(n, this.decodeFramesThatFit(latents.gpu, h, w)));
    if (!Number.isInteger(size) || size < 1) throw new ShapeError('MoVQ.decodeVideo', `chunkFrames must be an integer >= 1, got ${size}`);
    const emit = async (frames: Tensor, first: number) => {
      try {
        await options.onFrames(frames, first);
      } finally {
        frames.dispose();
      }
    };
    const piece = (start: number, length: number) => tidy(() => this.decode(slice(latents, 0, start, length)));

    if (!this.isVideo || (options.mode ?? 'upstream') === 'upstream') {
      for (const r of splitFrames(n, size)) await emit(piece(r.start, r.length), r.start);
      return;
    }
    if (options.mode !== 'overlap') throw new ShapeError('MoVQ.decodeVideo', `mode must be 'upstream' or 'overlap', got '${String(options.mode)}'`);
    decodeBands(c, Math.min(n, size), h, w, latents.gpu.maxBinding);
    await this.decodeOverlapped(n, size, options.overlap ?? Math.min(2, size - 1), piece, emit);
  }

  /** 'overlap' mode: cross-faded windows (chunking.ts says why). */
  private async decodeOverlapped(
    n: number,
    size: number,
    overlap: number,
    piece: (start: number, length: number) => Tensor,
    emit: (frames: Tensor, first: number) => Promise<void>,
  ): Promise<void> {
    const windows = overlapWindows(n, size, overlap);
    // Weighted sums of the frames decoded so far and not yet emitted.
    const pending = new Map<number, Tensor>();
    let emitted = 0;
    try {
      for (let i = 0; i < windows.length; i++) {
        const win = windows[i];
        const out = piece(win.start, win.length);
        try {
          win.weights.forEach((weight, k) => {
            const f = win.start + k;
            const acc = pending.get(f);
            const sum = tidy(() => {
              const frame = slice(out, 0, k, 1);
              if (acc) return axpby(1, acc, weight, frame);
              return weight === 1 ? frame : affine(frame, weight, 0);
            });
            acc?.dispose();
            pending.set(f, keep(sum));
          });
        } finally {
          out.dispose();
        }
        // Frames before the next window are final.
        const done = i + 1 < windows.length ? windows[i + 1].start : n;
        if (done > emitted) {
          const frames = Array.from({ length: done - emitted }, (_, k) => pending.get(emitted + k)!);
          const batch = keep(tidy(() => (frames.length === 1 ? affine(frames[0], 1, 0) : concat(frames, 0))));
          for (let f = emitted; f < done; f++) {
            pending.get(f)!.dispose();
            pending.delete(f);
          }
          const first = emitted;
          emitted = done;
          await emit(batch, first);
        }
      }
    } finally {
      for (const t of pending.values()) t.dispose();
    }
  }
}
