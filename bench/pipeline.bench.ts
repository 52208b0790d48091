// `npm run bench -- pipeline` (minutes, so not in the default run): the demo
// generation (`npm run demo`: tiny untrained models, 64×64, fps high, 12
// steps) timed stage by stage with its peak device memory, then a projection of a real 512×512 medium-fps
// generation (src/pipeline/projection.ts: the real models' work counted per
// kernel family on a dry-run GPU) from this run's measured throughput, and
// on a GPU of a stated throughput.
import { DEMO_PROMPT } from '../src/cli/demo.ts';
import { ensureDemoWeights } from '../src/pipeline/demoWeights.ts';
import { generateVideo } from '../src/pipeline/generate.ts';
import { REAL_GENERATION, type Throughput, costGeneration, projectSeconds } from '../src/pipeline/projection.ts';
import type { BenchReport, OpResult } from './harness.ts';

const DEMO = { fps: 'high', width: 64, height: 64, steps: 12, seed: 0 } as const;

/** The op rows whose throughput stands for each compute-bound family (f32 weights, U-Net shapes). */
const REPRESENTATIVE: Record<string, { op: string; shape: string }> = {
  matmul: { op: 'matmul', shape: '4096x384x1536' },
  conv2d: { op: 'conv2d', shape: '384x384x64x64xk3' },
  attention: { op: 'attention_self', shape: '8x4096x4096x64' },
};

/**
 * The GPU the projection also states: an NVIDIA A100 (19.5 TFLOP/s f32
 * without tensor cores, 1.55 TB/s HBM), assuming our kernels reach 40% of
 * its f32 peak and 60% of its bandwidth (plausible for shared-memory tiled
 * f32 kernels; not measured here, since this machine has no GPU).
 */
const GPU: Throughput & { name: string } = {
  name: 'NVIDIA A100 f32 at 40% of 19.5 TFLOP/s, 60% of 1.55 TB/s (assumed)',
  gflops: { matmul: 7800, conv2d: 7800, attention: 7800 },
  gbps: 930,
};

const hours = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);

export const reports: BenchReport[] = [
  {
    name: 'pipeline',
    explicit: true,
    needs: Object.values(REPRESENTATIVE),
    async run({ gpu, rows, peak }) {
      const weights = await ensureDemoWeights();
      const t0 = performance.now();
      const video = await generateVideo({ prompt: DEMO_PROMPT, weights, gpu, ...DEMO });
      const totalMs = performance.now() - t0;
      const stageRows: OpResult[] = video.timings.map((t) => ({
        op: `pipeline_stage:${t.stage}`,
        shape: `${DEMO.width}x${DEMO.height}`,
        dtype: 'f32',
        variant: `demo weights, fps ${DEMO.fps}, ${DEMO.steps} steps, ${video.frames.length} frames; peak device ${(t.peakBytes / 2 ** 20).toFixed(1)} MiB`,
        ms: t.ms,
        runs: 1,
        gflops: null,
        gbps: null,
        pct_peak: null,
        naive_ms: null,
        naive_fraction: null,
        speedup_vs_naive: null,
        peers: [],
      }));
      const lines = [`demo pipeline: ${video.frames.length} frames in ${(totalMs / 1000).toFixed(1)} s, peak device memory ${(video.peakBytes / 2 ** 20).toFixed(1)} MiB`];

      const stages = costGeneration(gpu, REAL_GENERATION);
      const here: Throughput = { gflops: {}, gbps: peak.copy_gbps };
      const missing: string[] = [];
      for (const [family, want] of Object.entries(REPRESENTATIVE)) {
        const row = rows.find((r) => r.op === want.op && r.shape === want.shape && r.dtype === 'f32' && r.gflops !== null);
        if (row) (here.gflops as Record<string, number>)[family] = row.gflops!;
        else missing.push(`${want.op} ${want.shape}`);
      }
      const g = REAL_GENERATION;
      lines.push(`projection: real ${g.width}x${g.height}, fps ${g.fps}, ${g.steps} steps, guidance ${g.guidance} / ${g.interpolationGuidance}, ${g.tokens} tokens (work counted on a dry-run GPU)`);
      const table = stages.map((s) => {
        const tflop = [...s.families.values()].reduce((a, c) => a + c.flops, 0) / 1e12;
        return { stage: s.stage, calls: s.calls, tflop };
      });
      const onGpu = projectSeconds(stages, GPU);
      const onHere = missing.length ? null : projectSeconds(stages, here);
      lines.push('stage | calls | TFLOP | this device | GPU');
      table.forEach((t, i) => lines.push(`${t.stage} | ${t.calls} | ${t.tflop.toFixed(1)} | ${onHere ? hours(onHere[i].seconds) : '-'} | ${hours(onGpu[i].seconds)}`));
      const total = (p: { seconds: number }[]) => p.reduce((a, s) => a + s.seconds, 0);
      lines.push(`total | | ${table.reduce((a, t) => a + t.tflop, 0).toFixed(1)} | ${onHere ? hours(total(onHere)) : '-'} | ${hours(total(onGpu))}`);
      if (missing.length) lines.push(`this device: not projected, the bench rows ${missing.join(', ')} have no throughput`);
      else lines.push(`this device's throughput: ${Object.entries(here.gflops).map(([f, v]) => `${f} ${v.toFixed(1)} GFLOP/s`).join(', ')}, memory-bound kernels at ${here.gbps.toFixed(1)} GB/s`);
      lines.push(`GPU: ${GPU.name}`);
      return {
        rows: stageRows,
        text: lines.join('\n'),
        json: {
          demo: { ...DEMO, frames: video.frames.length, ms: totalMs, peak_bytes: video.peakBytes },
          projection: {
            generation: g,
            stages: table.map((t, i) => ({ ...t, seconds_here: onHere?.[i].seconds ?? null, seconds_gpu: onGpu[i].seconds, by_family_here: onHere?.[i].byFamily ?? null })),
            throughput_here: missing.length ? null : here,
            gpu: GPU,
          },
        },
      };
    },
  },
];
