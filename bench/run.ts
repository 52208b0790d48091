// `npm run bench [-- filter...] [--json] [--quick]`: runs every case of
// bench/*.bench.ts whose op, family or shape contains a filter, and prints a
// table, then the model-level reports (cases and reports marked explicit
// only when a filter names them, reports with the op rows they need); --json also writes bench/results/<UTC date-time>.json in the shared
// format (../shared/design/bench-results.md).
import { Gpu } from '../src/gpu/gpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import type { BenchCase, BenchReport, OpResult, Peak } from './harness.ts';

export interface BenchOptions {
  json: boolean;
  /** Fewer timed runs (CI smoke test). */
  quick: boolean;
}


function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median of `runs` timed runs, after a warm-up run (which compiles the pipelines) unless told not to. */
async function time(gpu: Gpu, fn: () => void | Promise<void>, runs: number, warmUp = true): Promise<number> {
  if (warmUp) {
    await fn();
    await gpu.sync();
  }
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    await gpu.sync();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** Peak f32 FMA throughput: 8 independent vec4 chains, 8x unrolled (runtimes.md). */
async function measurePeak(gpu: Gpu, runs: number): Promise<Peak> {
  const invocations = 256 * 1024;
  const iterations = 64;
  const sink = Tensor.empty(gpu, [invocations * 4]);
  let best = 0;
  for (const WG of [64, 256]) {
    const ms = await time(
      gpu,
      () => gpu.dispatch({ kernel: 'bench', entry: 'fma_peak', overrides: { WG } }, { params: { iterations, count: 0 }, sink: sink.binding() }, [invocations / WG]),
      runs,
    );
    best = Math.max(best, (invocations * iterations * 8 * 8 * 8) / ms / 1e6);
  }
  sink.dispose();
  const n = 16 * 1024 * 1024; // vec4s: 256 MiB total traffic would exceed a binding; use 64 MiB each way
  const count = n / 4;
  const src = Tensor.empty(gpu, [count * 4]);
  const dst = Tensor.empty(gpu, [count * 4]);
  const WG = 256;
  const groups = Math.ceil(count / WG);
  const y = Math.ceil(groups / 65535);
  const ms = await time(
    gpu,
    () => gpu.dispatch({ kernel: 'bench', entry: 'copy', overrides: { WG } }, { params: { iterations: 0, count }, sink: dst.binding(), src: src.binding() }, [Math.ceil(groups / y), y]),
    runs,
  );
  src.dispose();
  dst.dispose();
  return { fma_gflops: best, copy_gbps: (2 * count * 16) / ms / 1e6 };
}

async function loadBenches(filters: string[]): Promise<{ cases: BenchCase[]; reports: BenchReport[] }> {
  const fs = await import('node:fs/promises');
  const dir = new URL('./', import.meta.url);
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.bench.ts')).sort();
  const cases: BenchCase[] = [];
  // Cases the filters leave out, which a report may still need.
  const all: BenchCase[] = [];
  const reports: BenchReport[] = [];
  const wanted = (hay: string) => filters.length === 0 || filters.some((q) => hay.includes(q));
  for (const f of files) {
    const family = f.slice(0, -'.bench.ts'.length);
    const mod = (await import(new URL(f, dir).href)) as { benches?: BenchCase[]; reports?: BenchReport[] };
    for (const c of mod.benches ?? []) {
      const hay = `${family} ${c.op} ${c.shape} ${c.variant}`;
      if (c.explicit ? filters.some((q) => hay.includes(q)) : wanted(hay)) cases.push(c);
      else all.push(c);
    }
    for (const r of mod.reports ?? []) {
      if (r.explicit ? filters.some((q) => `${family} ${r.name}`.includes(q)) : wanted(`${family} ${r.name}`)) reports.push(r);
    }
  }
  const needed = reports.flatMap((r) => r.needs ?? []);
  cases.push(...all.filter((c) => needed.some((n) => n.op === c.op && n.shape === c.shape)));
  return { cases, reports };
}

function fmt(v: number | null, digits = 1): string {
  return v === null ? '-' : v.toFixed(digits);
}

export async function benchCommand(filters: string[], options: BenchOptions): Promise<number> {
  const gpu = await Gpu.open();
  const runs = options.quick ? 2 : 5;
  const { cases, reports } = await loadBenches(filters);
  const peak = await measurePeak(gpu, runs);
  const a = gpu.info.adapter;
  process.stdout.write(`adapter: ${a.description || a.device}\npeak: ${peak.fma_gflops.toFixed(1)} GFLOP/s f32 FMA, ${peak.copy_gbps.toFixed(1)} GB/s copy\n\n`);
  const header = ['op', 'shape', 'dtype', 'variant', 'ms', 'GFLOP/s', 'GB/s', '% peak', 'naive ms', 'x naive', 'peers'];
  process.stdout.write(`${header.join(' | ')}\n`);
  const results: OpResult[] = [];
  for (const c of cases) {
    const run = await c.setup(gpu);
    try {
      const ms = await time(gpu, () => run.run(), runs);
      // The naive kernels run once, unwarmed: their pipelines are small to
      // compile next to seconds of work, and repeating them would be most of the bench.
      const fraction = run.naiveFraction ?? 1;
      const naiveMs = run.naive ? (await time(gpu, () => run.naive!(), 1, false)) / fraction : null;
      const peers: OpResult['peers'] = [];
      for (const [name, fn] of Object.entries(run.peers ?? {})) {
        try {
          const pms = await time(gpu, fn, runs);
          peers.push({ name, ms: pms, gflops: c.flops ? c.flops / pms / 1e6 : undefined });
        } catch (e) {
          peers.push({ name, error: (e as Error).message });
        }
      }
      const gflops = c.flops ? c.flops / ms / 1e6 : null;
      const gbps = c.bytes ? c.bytes / ms / 1e6 : null;
      const pct = gflops !== null ? (100 * gflops) / peak.fma_gflops : gbps !== null ? (100 * gbps) / peak.copy_gbps : null;
      const r: OpResult = {
        op: c.op,
        shape: c.shape,
        dtype: c.dtype,
        variant: c.variant,
        ms,
        runs,
        gflops,
        gbps,
        pct_peak: pct,
        naive_ms: naiveMs,
        naive_fraction: run.naive ? fraction : null,
        speedup_vs_naive: naiveMs !== null ? naiveMs / ms : null,
        peers,
      };
      results.push(r);
      // The peer against ours: "3.5x slower" or "6.8x faster".
      const versus = (peerMs: number) => (peerMs >= ms ? `${(peerMs / ms).toFixed(1)}x slower` : `${(ms / peerMs).toFixed(1)}x faster`);
      const peerText = peers.map((p) => (p.error ? `${p.name}: ${p.error}` : `${p.name} ${fmt(p.ms ?? null)} ms (${versus(p.ms!)})`)).join('; ');
      process.stdout.write(
        `${[r.op, r.shape, r.dtype, r.variant, fmt(ms, 2), fmt(gflops), fmt(gbps), fmt(pct), fmt(naiveMs, 1), fmt(r.speedup_vs_naive), peerText || '-'].join(' | ')}\n`,
      );
    } finally {
      run.dispose();
    }
    await gpu.sync();
  }
  const reportJson: Record<string, unknown> = {};
  for (const report of reports) {
    const out = await report.run({ gpu, rows: [...results], peak, quick: options.quick });
    for (const r of out.rows) {
      results.push(r);
      process.stdout.write(`${[r.op, r.shape, r.dtype, r.variant, fmt(r.ms, 2), fmt(r.gflops), fmt(r.gbps), fmt(r.pct_peak), '-', '-', '-'].join(' | ')}\n`);
    }
    process.stdout.write(`\n${out.text}\n`);
    reportJson[report.name] = out.json;
  }
  if (options.json) {
    const fs = await import('node:fs/promises');
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const file = new URL(`./results/${date.replace(/:/g, '-')}.json`, import.meta.url);
    await fs.mkdir(new URL('./results/', import.meta.url), { recursive: true });
    const doc = { date, runtime: gpu.info.runtimeVersion, adapter: gpu.info.adapter, peak, ops: results, ...reportJson };
    await fs.writeFile(file, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(`\nwrote ${file.pathname}\n`);
  }
  gpu.destroy();
  return 0;
}
