// `npm run demo`. Until the pipeline lands this shows the adapter and runs one
// real kernel end to end (upload, dispatch, readback) with its timing.
import { Gpu } from '../gpu/gpu.ts';
import { silu } from '../ops/elementwise.ts';
import { Tensor } from '../tensor/tensor.ts';

export async function demoCommand(): Promise<number> {
  const t0 = performance.now();
  const gpu = await Gpu.open();
  const a = gpu.info.adapter;
  process.stdout.write(`adapter: ${a.description || a.device} (${gpu.info.software ? 'software' : 'hardware'}, ${gpu.info.backend})\n`);
  const n = 1 << 20;
  const x = Tensor.from(gpu, Float32Array.from({ length: n }, (_, i) => (i / n) * 8 - 4), [n]);
  const t1 = performance.now();
  const y = await silu(x).read();
  const ms = performance.now() - t1;
  const at = (v: number) => Math.round(((v + 4) / 8) * n);
  process.stdout.write(`silu over ${n} values on the GPU in ${ms.toFixed(1)} ms: silu(-1) = ${y[at(-1)].toFixed(6)}, silu(2) = ${y[at(2)].toFixed(6)}\n`);
  process.stdout.write(`total ${(performance.now() - t0).toFixed(0)} ms (the text-to-video pipeline is not built yet)\n`);
  gpu.destroy();
  return 0;
}
