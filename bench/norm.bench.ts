// Norm benchmarks: the U-Net's group norm at its largest level-0 shape, MoVQ's
// spatial norm, and the T5/projection row norms. All are memory-bound: bytes
// count each tensor once (x read, out written, the small operands read),
// though the kernels read x twice (statistics, then output), so GB/s compares
// with the copy peak.
import type { Gpu } from '../src/gpu/gpu.ts';
import { groupNorm, groupParams, layerNorm, rmsNorm, spatialNorm } from '../src/ops/norm.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import { flatGrid } from '../src/ops/grid.ts';
import type { BenchCase, BenchRun } from './harness.ts';

const NAIVE_WG = 64;

/** Deterministic values in [-1, 1] (test/helpers imports vitest, so not that). */
function rand(gpu: Gpu, shape: number[], seed: number): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 12.9898);
  return Tensor.from(gpu, data, shape);
}

/**
 * The naive kernel: one invocation per (sample, group), serial two-pass
 * loops, affine output. Row norms run it as groups = 1, channels = D, hw = 1.
 */
function naive(x: Tensor, rows: number, channels: number, groups: number, hw: number, weight: Tensor, bias: Tensor | undefined): () => void {
  return () => {
    const out = Tensor.empty(x.gpu, x.shape);
    x.gpu.dispatch(
      { kernel: 'norm', entry: 'naive_norm', overrides: { WG: NAIVE_WG, RMS: bias === undefined } },
      {
        gn: groupParams({ samples: rows, channels, groups, hw, eps: 1e-5 }),
        x: x.binding(),
        weight: weight.binding(),
        bias: (bias ?? weight).binding(),
        // The kernel's out is an array of vec4s.
        out: { ...out.binding(), size: Math.ceil(out.byteLength / 16) * 16 },
      },
      flatGrid(rows * groups, NAIVE_WG),
    );
    out.dispose();
  };
}

/** Runs op and disposes its output (the pool hands the buffer back next run). */
function discard(op: () => Tensor): () => void {
  return () => op().dispose();
}

function groupNormCase(variant: 'affine' | 'scale_shift+silu'): BenchCase {
  const [c, h, w, groups] = [384, 64, 64, 32];
  const elems = c * h * w;
  return {
    op: 'group_norm',
    shape: `${c}x${h}x${w}`,
    dtype: 'f32',
    variant: `${groups} groups, ${variant}`,
    bytes: 4 * (2 * elems + 2 * c), // x, out, and weight+bias or one scale/shift row
    setup(gpu): BenchRun {
      const x = rand(gpu, [1, c, h, w], 1);
      const weight = rand(gpu, [c], 2);
      const bias = rand(gpu, [c], 3);
      const scaleShift = rand(gpu, [1, 2 * c], 4);
      const opts = variant === 'affine' ? { groups, eps: 1e-5, weight, bias } : { groups, eps: 1e-5, scaleShift, silu: true };
      return {
        run: discard(() => groupNorm(x, opts)),
        naive: naive(x, 1, c, groups, h * w, weight, bias),
        dispose: () => [x, weight, bias, scaleShift].forEach((t) => t.dispose()),
      };
    },
  };
}

/** MoVQ decoder level 1 (256 channels at 128×128) with its latent 64×64 zq. */
const spatialNormCase: BenchCase = {
  op: 'spatial_norm',
  shape: '256x128x128',
  dtype: 'f32',
  variant: '32 groups, zq 64x64 upsampled 2x, silu',
  bytes: 4 * (2 * 256 * 128 * 128 + 2 * 256 * 64 * 64 + 2 * 256),
  setup(gpu): BenchRun {
    const x = rand(gpu, [1, 256, 128, 128], 1);
    const zqY = rand(gpu, [1, 256, 64, 64], 2);
    const zqB = rand(gpu, [1, 256, 64, 64], 3);
    const weight = rand(gpu, [256], 4);
    const bias = rand(gpu, [256], 5);
    return {
      run: discard(() => spatialNorm(x, zqY, zqB, { groups: 32, eps: 1e-6, weight, bias, silu: true })),
      naive: naive(x, 1, 256, 32, 128 * 128, weight, bias),
      dispose: () => [x, zqY, zqB, weight, bias].forEach((t) => t.dispose()),
    };
  },
};

function rowNormCase(op: 'layer_norm' | 'rms_norm'): BenchCase {
  const [rows, d] = [128, 4096];
  return {
    op,
    shape: `${rows}x${d}`,
    dtype: 'f32',
    variant: op === 'layer_norm' ? 'affine' : 'T5',
    bytes: 4 * (2 * rows * d + (op === 'layer_norm' ? 2 : 1) * d),
    setup(gpu): BenchRun {
      const x = rand(gpu, [rows, d], 1);
      const weight = rand(gpu, [d], 2);
      const bias = op === 'layer_norm' ? rand(gpu, [d], 3) : undefined;
      return {
        run: discard(() => (bias ? layerNorm(x, weight, bias, 1e-5) : rmsNorm(x, weight, 1e-6))),
        naive: naive(x, rows, d, 1, 1, weight, bias),
        dispose: () => [x, weight, bias].forEach((t) => t?.dispose()),
      };
    },
  };
}

export const benches: BenchCase[] = [groupNormCase('affine'), groupNormCase('scale_shift+silu'), spatialNormCase, rowNormCase('layer_norm'), rowNormCase('rms_norm')];
