// conv2d benchmarks (shape: Cin x Cout x H x W x kernel, batch 1): the
// U-Net's 3×3 convs at level 0 (384 channels, 64×64 latent of a 512-pixel
// frame) and at the deepest level (1536 channels, 8×8), f32 and f16 weights.
// flops = 2·O·C·kh·kw·output pixels. `naive` is kernels/conv3d.wgsl's direct
// loop, one output per invocation.
//
// What was measured on lavapipe (Mesa 25.0, LLVM 15, 2 cores AVX2), 3×3
// 128→128 on 32×32, as a share of the FMA peak kernel timed alternately in the
// same process (the machine was shared; wall times varied 3x):
// - one output per invocation (naive): ~1%; the previous 4 ch × 4 px tile
//   with loops: ~4%.
// - weights staged in workgroup memory (64 lanes, 32 ch × 8-16 px tiles):
//   5-11%. A barrier makes lavapipe compile the shader as a coroutine whose
//   locals all live in its frame, so every per-lane load chains through
//   store forwarding.
// - register tiles without barriers, weights read straight from the packed
//   buffer: 32 ch × 8 px 10-16%, 32 × 16 px 11%, 32 × 32 px 10%, 16 × 16 px
//   6-10%; one input channel per accumulator update instead of two 9-11%.
// - the tile kept as SSA values (a struct of mat4x4) instead of a function
//   array: LLVM spills and copies it every iteration, ~8%.
// Why no more: a storage load with a non-constant offset costs ~9 cycles per
// lane-float here (measured: scalar, vec4 or one address for all lanes alike),
// so even a 32×8 tile spends most of its time loading. Bigger tiles do not pay
// off and take minutes to compile (32 × 16 px: 85 s, 32 × 32: 214 s). The
// chosen tile (32 ch × 8 px, 2 channels per update) compiles in ~8 s CPU.
//
// The subgroup kernel (entry conv_subgroup; lavapipe's default for 32+
// output channels) broadcasts pixels across the subgroup like the matmul's
// subgroup kernel, so each value read serves 32 pixels × 64 channels per
// subgroup. Measured on the shared machine (load 4-7), interleaved in one
// process with the register tile and the matmul subgroup kernel on 1024³, as
// a multiple of that matmul's GFLOP/s in the same repetition (3 each):
// - 384→384 on 64×64: f32 0.9-1.4× (register tile 0.4-0.5×), best 7-15
//   GFLOP/s; f16 weights 1.4-2.3× (tile 0.5-0.6×), best 21 GFLOP/s.
// - 1536→1536 on 8×8: 0.5-0.6× (tile 0.45×). A third of its time was the
//   per-call repacking of the 85 MB of weights (~0.4 s): the layers now pack
//   once, at load, and these rows time the conv on a kernel packed once.
// - conv3d (3,1,1) 384 ch: 1.2-1.5× (tile 0.4-0.5×); (3,3,3) 128 ch:
//   0.6-1.1× (tile 0.4-0.6×).
// Within the noise of these runs: 1 vs 2 channel quads per lane, 2 vs 4
// row groups, 8 vs 16 lanes per workgroup, 2 channel quads per accumulator
// update (and that doubled the compile time, ~27 s under load).
import type { Gpu } from '../src/gpu/gpu.ts';
import { conv2d, conv2dGemm, conv2dNaive, convGeometry, convVariant, describeVariant, packConvWeight } from '../src/ops/conv2d.ts';
import { winogradPays } from '../src/ops/winograd.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';
import { peerOf } from './peers/tfjs.ts';

/** Deterministic values in [-0.5, 0.5] (test/helpers imports vitest, so not that). */
function rand(gpu: Gpu, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32'): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = 0.5 * Math.sin(seed + i * 12.9898);
  return Tensor.from(gpu, data, shape, dtype);
}

/**
 * f32 rows of the default algorithm also time the naive kernel and the
 * tfjs-webgpu peer; the others only ours. The naive kernel computes
 * `naiveOut` output channels (each the same work; its time is scaled to all
 * of them). Winograd rows count the direct conv's FLOPs (effective GFLOP/s).
 */
function convCase(c: number, o: number, size: number, k: number, dtype: 'f32' | 'f16', naiveOut = o, algorithm?: 'direct'): BenchCase {
  const padding = (k - 1) / 2;
  const g = convGeometry([1, c, size, size], [o, c, k, k], { padding });
  const baselines = dtype === 'f32' && algorithm === undefined;
  let variant = '';
  return {
    op: 'conv2d',
    shape: `${c}x${o}x${size}x${size}xk${k}`,
    dtype: (dtype === 'f16' ? 'f32 (f16 weights)' : 'f32') + (algorithm ? ', direct' : ''),
    get variant() {
      return variant;
    },
    flops: 2 * o * c * k * k * g.outH * g.outW,
    async setup(gpu): Promise<BenchRun> {
      variant =
        algorithm === undefined && winogradPays(gpu, g)
          ? 'Winograd F(2x2, 3x3): 16 GEMMs by the matmul kernel between input and output transforms, kernel transformed per call; effective GFLOP/s'
          : describeVariant(convVariant(gpu, conv2dGemm(g), dtype === 'f16'));
      const x = rand(gpu, [1, c, size, size], 1);
      const weight = rand(gpu, [o, c, k, k], 2, dtype);
      const packed = packConvWeight(weight);
      const bias = rand(gpu, [o], 3);
      const peer = baselines ? await peerOf((p) => p.conv2d(c, o, size, size, k)) : undefined;
      const naiveWeight = naiveOut < o ? rand(gpu, [naiveOut, c, k, k], 2) : weight;
      const naiveBias = naiveOut < o ? rand(gpu, [naiveOut], 3) : bias;
      return {
        run: () => conv2d(x, { packed, shape: weight.shape }, bias, { padding, algorithm }).dispose(),
        naive: baselines ? () => conv2dNaive(x, naiveWeight, naiveBias, { padding }).dispose() : undefined,
        naiveFraction: naiveOut / o,
        peers: peer?.peers,
        dispose: () => {
          new Set([x, weight, packed, bias, naiveWeight, naiveBias]).forEach((t) => t.dispose());
          peer?.dispose();
        },
      };
    },
  };
}

// The naive 3×3 convs take 4-20 s each on lavapipe: timed on a quarter of the output channels.
// The direct kernel's row shows what Winograd (the default there) gains.
export const benches: BenchCase[] = [
  convCase(384, 384, 64, 3, 'f32', 96),
  convCase(384, 384, 64, 3, 'f32', 96, 'direct'),
  convCase(384, 384, 64, 3, 'f16'),
  convCase(1536, 1536, 8, 3, 'f32', 384),
];
