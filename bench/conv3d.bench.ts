// conv3d benchmarks on videos kept as (b·t, C, H, W) (shape: Cin x Cout x T x
// H x W x kernel): the keyframe U-Net's temporal (3,1,1) conv at level 0 of a
// 256-pixel video (384 channels, 15 frames, 32×32), and a (3,3,3) conv like
// the video MoVQ's temporal projections (128 channels, 4 frames, 32×32).
// flops = 2·O·C·kt·kh·kw·output pixels. `naive` is kernels/conv3d.wgsl's direct
// loop. The kernel is conv2d's implicit GEMM (see bench/conv2d.bench.ts for
// what was measured); its register tile reads the pixel quads of 1×1-spatial
// kernels as one vector, its subgroup variant reads x channels-last.
import type { Gpu } from '../src/gpu/gpu.ts';
import { convVariant, describeVariant, packConvWeight } from '../src/ops/conv2d.ts';
import { conv3d, conv3dGeometry, conv3dNaive } from '../src/ops/conv3d.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';

function rand(gpu: Gpu, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32'): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = 0.5 * Math.sin(seed + i * 12.9898);
  return Tensor.from(gpu, data, shape, dtype);
}

/**
 * naiveOut: output channels the naive kernel computes (a slice of the weights;
 * each output channel is the same work, so its time is scaled to all of them).
 */
function conv3dCase(op: string, c: number, frames: number, size: number, kernel: [number, number, number], naiveOut = c): BenchCase {
  const padding = kernel.map((k) => (k - 1) / 2) as [number, number, number];
  const options = { frames, padding };
  const g = conv3dGeometry([frames, c, size, size], [c, c, ...kernel], options);
  let variant = '';
  return {
    op,
    shape: `${c}x${c}x${frames}x${size}x${size}xk${kernel.join('')}`,
    dtype: 'f32',
    get variant() {
      return variant;
    },
    flops: 2 * c * c * kernel[0] * kernel[1] * kernel[2] * frames * size * size,
    setup(gpu): BenchRun {
      variant = describeVariant(convVariant(gpu, g, false));
      const x = rand(gpu, [frames, c, size, size], 1);
      const weight = rand(gpu, [c, c, ...kernel], 2);
      const bias = rand(gpu, [c], 3);
      const packed = packConvWeight(weight);
      const naiveWeight = naiveOut < c ? rand(gpu, [naiveOut, c, ...kernel], 2) : weight;
      const naiveBias = naiveOut < c ? rand(gpu, [naiveOut], 3) : bias;
      return {
        // Packed once, as the Conv3d layer keeps it.
        run: () => conv3d(x, { packed, shape: weight.shape }, bias, options).dispose(),
        naive: () => conv3dNaive(x, naiveWeight, naiveBias, options).dispose(),
        naiveFraction: naiveOut / c,
        dispose: () => new Set([x, weight, packed, bias, naiveWeight, naiveBias]).forEach((t) => t.dispose()),
      };
    },
  };
}

// The naive temporal conv takes ~1 min on lavapipe: timed on 48 of 384 output channels.
export const benches: BenchCase[] = [conv3dCase('conv3d_temporal', 384, 15, 32, [3, 1, 1], 48), conv3dCase('conv3d', 128, 4, 32, [3, 3, 3])];
