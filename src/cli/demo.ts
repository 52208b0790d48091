// `npm run demo`: the whole pipeline (tokenizer, T5, keyframes, both
// interpolation passes, temporal MoVQ) on a small deterministic checkpoint
// set with the real key layout. The weights are untrained, so the video is
// structured noise; with --weights pointing at the real release,
// `kandinsky generate` makes a real video through exactly the same code.
import { ensureDemoWeights } from '../pipeline/demoWeights.ts';
import { runGenerate } from './generate.ts';

export interface DemoOptions {
  out: string;
  steps: number;
  fps: 'low' | 'medium' | 'high';
  json: boolean;
}

export const DEMO_PROMPT = 'A red car drifting, 4k video';

export async function demoCommand(o: DemoOptions): Promise<number> {
  const t0 = performance.now();
  const weights = await ensureDemoWeights();
  process.stderr.write(`demo weights: ${weights} (tiny, untrained: expect structured noise, not a car)\n`);
  process.stderr.write(`prompt: "${DEMO_PROMPT}", fps ${o.fps}, ${o.steps} steps, 64x64, seed 0\n`);
  const code = await runGenerate({
    prompt: DEMO_PROMPT,
    weights,
    fps: o.fps,
    width: 64,
    height: 64,
    steps: o.steps,
    seed: 0,
    out: o.out,
    force: true,
    json: o.json,
  });
  process.stderr.write(`demo finished in ${((performance.now() - t0) / 1000).toFixed(1)} s. Real weights: kandinsky generate "<prompt>" --weights DIR --out video.mp4\n`);
  return code;
}
