// Matmul benchmarks: a square 1024³ product and a U-Net-like projection
// (4096 tokens × 1536 → 384), with f32 and f16 weights in PyTorch's [N, K]
// layout (what linear layers run). Shapes are MxNxK. The default rows run the
// kernel this adapter selects; the 'tiled' and 'shared' rows compare the
// other kernels on the square f32 product.
import type { Gpu } from '../src/gpu/gpu.ts';
import { type MatmulVariant, matmul, matmulAdapterInfo, selectMatmulVariant } from '../src/ops/matmul.ts';
import { Tensor, numel } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchRun } from './harness.ts';
import { peerOf } from './peers/tfjs.ts';

/** Deterministic values in [-1, 1] (test/helpers imports vitest, so not that). */
function rand(gpu: Gpu, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32'): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 12.9898);
  return Tensor.from(gpu, data, shape, dtype);
}

/** withNaive: also time the naive kernel and the tfjs-webgpu peer (f32 rows of the selected kernel). */
function matmulCase(m: number, n: number, k: number, dtype: 'f32' | 'f16', variant?: MatmulVariant, withNaive = true): BenchCase {
  return {
    op: 'matmul',
    shape: `${m}x${n}x${k}`,
    dtype,
    // The selected kernel's name is filled in by setup.
    variant: variant ?? 'selected',
    flops: 2 * m * n * k,
    async setup(gpu): Promise<BenchRun> {
      const chosen = variant ?? selectMatmulVariant(m, n, k, matmulAdapterInfo(gpu));
      this.variant = `${chosen}, B [N,K] ${dtype}`;
      const a = rand(gpu, [m, k], 1);
      const b = rand(gpu, [n, k], 2, dtype);
      const product = (v: MatmulVariant) => () => matmul(a, b, { transposeB: true, variant: v }).dispose();
      const peer = withNaive ? await peerOf((p) => p.matmul(m, n, k)) : undefined;
      return {
        run: product(chosen),
        naive: withNaive ? product('naive') : undefined,
        peers: peer?.peers,
        dispose: () => {
          [a, b].forEach((t) => t.dispose());
          peer?.dispose();
        },
      };
    },
  };
}

// The naive kernel takes seconds per run on CPU adapters: timed on the f32 rows only.
export const benches: BenchCase[] = [
  matmulCase(1024, 1024, 1024, 'f32'),
  matmulCase(1024, 1024, 1024, 'f16', undefined, false),
  matmulCase(4096, 384, 1536, 'f32'),
  matmulCase(4096, 384, 1536, 'f16', undefined, false),
  matmulCase(1024, 1024, 1024, 'f32', 'tiled', false),
  matmulCase(1024, 1024, 1024, 'f32', 'shared', false),
];
