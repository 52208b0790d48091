// End to end on the demo checkpoint set (tiny, untrained, real key layout).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoWeights } from '../../src/pipeline/demoWeights.ts';
import { type GenerateOptions, generateVideo } from '../../src/pipeline/generate.ts';
import { testGpu } from '../helpers.ts';

let weights = '';
beforeAll(async () => {
  weights = await ensureDemoWeights();
}, 300_000);

async function run(o: Partial<GenerateOptions>) {
  return generateVideo({ prompt: 'A red car drifting, 4k video', weights, width: 64, height: 64, steps: 2, fps: 'low', gpu: await testGpu(), ...o });
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('text to video pipeline', () => {
  it('low and medium frame rates give 15 and 57 frames; a seed gives the same video', async () => {
    const low = await run({ fps: 'low' });
    expect(low.frames).toHaveLength(15);
    expect(low.frames[0].data).toHaveLength(64 * 64 * 3);
    expect(low.timings.map((t) => t.stage)).toEqual(['text', 'keyframes', 'decode']);
    const again = await run({ fps: 'low' });
    expect(again.frames.map((f) => f.data)).toEqual(low.frames.map((f) => f.data));
    const other = await run({ fps: 'low', seed: 1 });
    expect(other.frames[0].data).not.toEqual(low.frames[0].data);
    const medium = await run({ fps: 'medium' });
    expect(medium.frames).toHaveLength(57);
  }, 600_000);

  it('guidance 0 equals the conditional pass alone: the unconditional context (here a negative prompt) changes nothing', async () => {
    const plain = await run({ guidance: 0 });
    const negative = await run({ guidance: 0, negativePrompt: 'blurry, low quality' });
    expect(negative.frames.map((f) => f.data)).toEqual(plain.frames.map((f) => f.data));
    const guided = await run({ guidance: 5, negativePrompt: 'blurry, low quality' });
    expect(guided.frames[0].data).not.toEqual(plain.frames[0].data);
  }, 600_000);

  it('high frame rate gives 225 frames', async () => {
    const high = await run({ fps: 'high', steps: 2 });
    expect(high.frames).toHaveLength(225);
    expect(high.timings.map((t) => t.stage)).toEqual(['text', 'keyframes', 'interpolation 1', 'interpolation 2', 'decode']);
  }, 900_000);

  it('f16 weights stay close to f32', async () => {
    const a = await run({ dtype: 'f32' });
    const b = await run({ dtype: 'f16' });
    // f16 weight rounding (2^-11 relative) through 2 steps of tiny models moves
    // 8-bit pixels by a few levels at most.
    expect(maxPixelDiff(a.frames[3].data, b.frames[3].data)).toBeLessThanOrEqual(16);
  }, 600_000);

  it('a broken weights folder gets the list of what it must contain', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weights-'));
    writeFileSync(join(dir, 'movq.pt'), 'not a checkpoint');
    await expect(run({ weights: dir })).rejects.toThrow(/missing kandinsky_video\.pt, kandinsky_video_interpolation\.pt, flan-ul2\/config\.json[\s\S]*KandinskyVideo/);
  });

  it('rejects bad sizes and steps', async () => {
    await expect(run({ width: 100 })).rejects.toThrow(/multiple of 64/);
    await expect(run({ steps: 0 })).rejects.toThrow(/steps must be an integer/);
  });

  it('Ctrl-C stops the CLI cleanly and leaves no output file', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'sigint-')), 'video.gif');
    const root = new URL('../../', import.meta.url).pathname;
    const child = spawn(process.execPath, [join(root, 'bin/kandinsky.js'), 'generate', 'a cat', '--weights', weights, '--out', out, '--size', '64x64', '--steps', '50', '--fps', 'high'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      // Interrupt once sampling has started.
      if (err.includes('[keyframes]') && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(err).toMatch(/interrupted; nothing was written/);
    expect(existsSync(out)).toBe(false);
  }, 300_000);
});
