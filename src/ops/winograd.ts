// The Winograd F(2×2, 3×3) path of conv2d (kernels/conv2d.wgsl, entries
// winograd_*): a 3×3 conv with stride 1 and padding 1 as 16 GEMMs over input
// channels (the matmul kernel, batched) between an input and an output
// transform, 2.25× fewer multiplies than the direct conv. The transformed
// kernel U [16, C, O_pad] is made per call from the packed one: 16/9 of the
// weights' size, a pass that is small next to the GEMMs on the images it is
// chosen for (see winogradPays), and no lasting memory.
import { DeviceLimitError } from '../errors.ts';
import type { Gpu } from '../gpu/gpu.ts';
import { Tensor } from '../tensor/tensor.ts';
import { tidy } from '../tensor/scope.ts';
import type { ConvGeometry } from './conv2d.ts';
import { ceilDiv } from './grid.ts';
import { matmul } from './matmul.ts';
import { type RowPart, partOf, rowParts } from './parts.ts';

const WG = 64;
/**
 * Bytes of V or M per chunk of tiles at most: the working memory is U plus
 * twice this (src/pipeline/resources.ts counts it). 2048+ tiles per GEMM at
 * 256 channels, enough rows for the matmul kernel's tiles.
 */
export const WINOGRAD_CHUNK_BYTES = 32 * 1024 * 1024;

/** A 3×3 conv with stride 1 and padding 1 on every side. */
export function winogradApplies(g: ConvGeometry): boolean {
  return g.kh === 3 && g.kw === 3 && g.stride === 1 && g.pad.every((p) => p === 1);
}

const padTo = (n: number, m: number): number => Math.ceil(n / m) * m;

/** Bytes of the transformed kernel: it must fit one binding. */
function kernelBytes(g: Pick<ConvGeometry, 'inChannels' | 'outChannels'>): number {
  return 16 * padTo(g.inChannels, 4) * padTo(g.outChannels, 8) * 4;
}

/** Device bytes a Winograd conv of up to `channels` in and out holds while it runs: U, and one chunk each of V and M. */
export function winogradWorkingBytes(channels: number): number {
  return kernelBytes({ inChannels: channels, outChannels: channels }) + 2 * WINOGRAD_CHUNK_BYTES;
}

/**
 * Whether Winograd is the default for this conv. Measured on lavapipe,
 * interleaved with the direct kernel (effective GFLOP/s, best of 3): 384 ch
 * 64×64 9.6 vs 5.2, 15×384 ch 32×32 8.9 vs 5.3, 256 ch 64×64 5.5 vs 4.3,
 * 30×128 ch 16×16 6.0 vs 4.9, but 30×64 ch 16×16 6.2 vs 8.1: with few
 * channels the GEMMs are too small for the transforms' cost. Few pixels
 * (the U-Net's 8×8 level) would spend most of the time transforming the
 * kernel. On an NVIDIA H200 (Dawn, Vulkan; 20 calls batched) 384 ch 64×64
 * took 0.49 ms against the direct kernel's 0.99 (22.3 vs 11.0 TFLOP/s
 * effective), so the same rule holds for GPUs.
 */
export function winogradPays(gpu: Gpu, g: ConvGeometry): boolean {
  return winogradApplies(g) && g.batch * g.outH * g.outW >= 4096 && Math.min(g.inChannels, g.outChannels) >= 128 && kernelBytes(g) <= gpu.maxBinding;
}

/** Image ranges [a, b) that lie in one part of x and one part of out. */
function imageRanges(x: Tensor, out: Tensor): { a: number; b: number; xPart: RowPart; outPart: RowPart }[] {
  const xs = rowParts(x);
  const outs = rowParts(out);
  const cuts = [...new Set([...xs.map((r) => r.first), ...outs.map((r) => r.first), x.shape[0]])].sort((a, b) => a - b);
  return cuts.slice(0, -1).map((a, i) => ({ a, b: cuts[i + 1], xPart: partOf(xs, a), outPart: partOf(outs, a) }));
}

/**
 * conv2d(x, kernel) + bias into out (N, O, H, W) for a 3×3, stride 1,
 * padding 1 geometry; `packed` is the kernel as conv2d packs it ([9, C, O_pad]).
 */
export function conv2dWinograd(x: Tensor, packed: Tensor, bias: Tensor | undefined, out: Tensor, g: ConvGeometry): void {
  const gpu = x.gpu;
  const cQuads = Math.ceil(g.inChannels / 4);
  const oPad = packed.shape[2];
  const oQuads = oPad / 4;
  const tilesW = Math.ceil(g.inW / 2);
  const tilesPerImage = Math.ceil(g.inH / 2) * tilesW;
  const common = { in_c: g.inChannels, c_quads: cQuads, out_c: g.outChannels, o_quads: oQuads, h: g.inH, w: g.inW, tiles_w: tilesW, tiles_per_image: tilesPerImage };
  if (kernelBytes(g) > gpu.maxBinding) {
    throw new DeviceLimitError('maxStorageBufferBindingSize', kernelBytes(g), gpu.maxBinding, `conv2d (Winograd): the transformed kernel of ${g.outChannels}x${g.inChannels}x3x3`);
  }
  const call = (entry: string) => ({ kernel: 'conv2d', entry, overrides: { WG, W_F16: packed.dtype === 'f16' } });
  tidy(() => {
    const kernel = Tensor.empty(gpu, [16, 4 * cQuads, oPad]);
    gpu.dispatch(call('winograd_weights'), { wp: { ...common, tile0: 0, tiles: 0, x_img0: 0, out_img0: 0, img0: 0, has_bias: 0 }, w: packed.binding(), wino_out: kernel.binding() }, [
      ceilDiv(oQuads, WG),
      4 * cQuads,
      1,
    ]);
    const perTile = 16 * 4 * Math.max(4 * cQuads, oPad);
    const maxTiles = Math.max(1, Math.floor(Math.min(WINOGRAD_CHUNK_BYTES, gpu.maxBinding) / perTile));
    for (const r of imageRanges(x, out)) {
      const total = (r.b - r.a) * tilesPerImage;
      for (let tile0 = 0; tile0 < total; tile0 += maxTiles) {
        const tiles = Math.min(maxTiles, total - tile0);
        tidy(() => {
          const wp = { ...common, tile0, tiles, x_img0: r.xPart.first, out_img0: r.outPart.first, img0: r.a, has_bias: bias ? 1 : 0 };
          const v = Tensor.empty(gpu, [16, tiles, 4 * cQuads]);
          gpu.dispatch(call('winograd_input'), { wp, x: r.xPart.t.binding(), wino_out: v.binding() }, [ceilDiv(tiles, WG), cQuads, 1]);
          const m = matmul(v, kernel);
          v.dispose();
          gpu.dispatch(call('winograd_output'), { wp, wino_m: m.binding(), bias: (bias ?? m).binding(), out: r.outPart.t.binding() }, [ceilDiv(tiles, WG), oQuads, 1]);
        });
      }
    }
  });
}
