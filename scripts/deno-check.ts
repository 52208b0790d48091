// `deno task check`: the runtime-parity check under Deno's own WebGPU. Runs
// every committed parity case whose module this build implements, then the
// short demo pipeline that test/runtimes checks against Node frame by frame,
// and prints one JSON report on stdout (progress on stderr). Needs the demo
// set in weights/demo (`npm run demo` or `npm test` builds it in Node).
import { Gpu } from '../src/gpu/gpu.ts';
import { type ParityResult, formatParity, runParity } from '../src/parity/run.ts';
import { parityModules } from '../src/parity/registry.ts';
import { CHECK_VIDEO } from '../src/pipeline/check.ts';
import { generateVideo } from '../src/pipeline/generate.ts';

declare const Deno: {
  readDir(p: string | URL): AsyncIterable<{ name: string; isDirectory: boolean }>;
  readTextFile(p: string | URL): Promise<string>;
  stat(p: string | URL): Promise<unknown>;
  exit(code: number): never;
};

const root = new URL('../', import.meta.url);
const casesRoot = new URL('test/fixtures/parity/', root);
const log = (line: string) => console.error(`[deno-check] ${line}`);

const demoWeights = new URL('weights/demo/', root);
if (!(await Deno.stat(new URL('config.json', demoWeights)).then(() => true, () => false))) {
  console.error(`[deno-check] ${demoWeights.pathname} is missing: build the demo set in Node first (npm run demo).`);
  Deno.exit(2);
}

const caseNames: string[] = [];
for await (const e of Deno.readDir(casesRoot)) if (e.isDirectory) caseNames.push(e.name);
caseNames.sort();

const gpu = await Gpu.open();
log(`${gpu.info.runtimeVersion}: ${gpu.info.adapter.description || gpu.info.adapter.device} (${gpu.info.backend})`);
const implemented = new Set(parityModules());
const parity: ParityResult[] = [];
for (const name of caseNames) {
  const dir = new URL(`${name}/`, casesRoot).pathname;
  const { module } = JSON.parse(await Deno.readTextFile(`${dir}case.json`));
  if (!implemented.has(module)) continue;
  const r = await runParity(async () => gpu, dir);
  log(formatParity(r));
  parity.push(r);
}

const t0 = performance.now();
const video = await generateVideo({ ...CHECK_VIDEO, weights: demoWeights.pathname, gpu });
log(`pipeline: ${video.frames.length} frames in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
gpu.destroy();

const base64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
console.log(
  JSON.stringify({
    runtime: gpu.info.runtimeVersion,
    adapter: gpu.info.adapter,
    parity,
    video: { width: video.width, height: video.height, timings: video.timings, frames: video.frames.map((f) => base64(f.data)) },
  }),
);
Deno.exit(parity.every((r) => r.status === 'pass') ? 0 : 1);
