// Benchmark harness: each bench/<family>.bench.ts exports `benches`, a list of
// BenchCase. The runner measures the device's peak FMA throughput and copy
// bandwidth with its own kernels (kernels/bench.wgsl), times every case
// (median of >= 5 runs after a warm-up, GPU work completed), and reports the
// share of peak and the speed-up over the naive kernel.
import type { Gpu } from '../src/gpu/gpu.ts';

export interface BenchRun {
  /** Records the op's dispatches once (the harness syncs and times). */
  run(): void;
  /** The deliberately simple kernel on the same shape, if there is one. */
  naive?(): void;
  /** Peers (other frameworks) timed on the same shape: name → async run. */
  peers?: Record<string, () => Promise<void>>;
  dispose(): void;
}

export interface BenchCase {
  /** Op name as in ../shared/design/bench-results.md (matmul, conv2d, ...). */
  op: string;
  /** Dimensions joined by 'x', in the order the issue writes them. */
  shape: string;
  dtype: string;
  variant: string;
  /** Floating-point operations of one run (compute-bound ops). */
  flops?: number;
  /** Bytes read + written by one run (memory-bound ops). */
  bytes?: number;
  setup(gpu: Gpu): Promise<BenchRun> | BenchRun;
}
