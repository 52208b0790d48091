// Benchmark harness: each bench/<family>.bench.ts exports `benches`, a list of
// BenchCase. The runner measures the device's peak FMA throughput and copy
// bandwidth with its own kernels (kernels/bench.wgsl), times every case
// (median of 5 runs after a warm-up, GPU work completed; the naive kernels
// once), and reports the share of peak and the speed-up over the naive
// kernel.
import type { Gpu } from '../src/gpu/gpu.ts';

export interface BenchRun {
  /** Records the op's dispatches once (the harness syncs and times). */
  run(): void;
  /** The deliberately simple kernel on the same shape, if there is one. */
  naive?(): void;
  /**
   * The share of the shape's work that `naive` does, when it runs a slice
   * (e.g. one of 8 independent heads, so that the bench stays within
   * minutes): its time is scaled by 1 / naiveFraction. Default 1.
   */
  naiveFraction?: number;
  /** Peers (other frameworks) timed on the same shape: name → async run. */
  peers?: Record<string, () => Promise<void>>;
  dispose(): void;
}

export interface BenchCase {
  /**
   * Only when a filter names it (`npm run bench -- unet`): model-level cases
   * take minutes per run on a software adapter, past the default run's budget.
   */
  explicit?: boolean;
  /** Op name as in ../shared/design/bench-results.md (matmul, conv2d, ...). */
  op: string;
  /** Dimensions joined by 'x', in the order the issue writes them. */
  shape: string;
  dtype: string;
  variant: string;
  /** Floating-point operations of one run (compute-bound ops). */
  flops?: number;
  /** Bytes read + written by one run (memory-bound ops; an op with flops too reports both, % peak from the flops). */
  bytes?: number;
  setup(gpu: Gpu): Promise<BenchRun> | BenchRun;
}

/** A bench row as printed and written to JSON (../shared/design/bench-results.md). */
export interface OpResult {
  op: string;
  shape: string;
  dtype: string;
  variant: string;
  ms: number;
  /** Timed runs the median is of. */
  runs: number;
  gflops: number | null;
  gbps: number | null;
  pct_peak: number | null;
  naive_ms: number | null;
  /** The share of the shape the naive kernel ran, its time scaled up from it (1: the whole shape). */
  naive_fraction: number | null;
  speedup_vs_naive: number | null;
  peers: { name: string; ms?: number; gflops?: number; error?: string }[];
}

export interface Peak {
  fma_gflops: number;
  copy_gbps: number;
}

/**
 * A model-level report run after the op rows (bench/<family>.bench.ts may
 * export `reports`): it may add rows and reads the op rows measured before it.
 */
export interface BenchReport {
  name: string;
  /** Only when a filter names it (`npm run bench -- <name>`): too slow for the default run. */
  explicit?: boolean;
  /** Op rows (op and shape) the report reads: run with it even when the filter leaves them out. */
  needs?: readonly { op: string; shape: string }[];
  run(ctx: { gpu: Gpu; rows: readonly OpResult[]; peak: Peak; quick: boolean }): Promise<{ rows: OpResult[]; text: string; json: unknown }>;
}
