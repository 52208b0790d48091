// What the Deno and browser runs are checked against: the committed parity
// cases, and Node's frames of the check video. The same seed on another
// WebGPU implementation gives the same video up to f32 rounding, which the
// 8-bit truncation of the output turns into an occasional one-level step.
import { readFileSync, readdirSync } from 'node:fs';
import { parityModules } from '../../src/parity/registry.ts';
import '../../src/parity/modules.ts';
import type { GenerateResult } from '../../src/pipeline/generate.ts';
import { CHECK_VIDEO } from '../../src/pipeline/check.ts';
import { ensureDemoWeights } from '../../src/pipeline/demoWeights.ts';
import { generateVideo } from '../../src/pipeline/generate.ts';
import { testGpu } from '../helpers.ts';

export interface FrameDiff {
  /** Largest difference of one 8-bit channel value. */
  max: number;
  /** Mean absolute difference over every channel value of every frame. */
  mean: number;
}

export function frameDiff(ours: readonly Uint8Array[], ref: readonly Uint8Array[]): FrameDiff {
  if (ours.length !== ref.length) throw new Error(`${ours.length} frames, the reference has ${ref.length}`);
  let max = 0;
  let sum = 0;
  let count = 0;
  ours.forEach((frame, i) => {
    if (frame.length !== ref[i].length) throw new Error(`frame ${i} has ${frame.length} values, the reference ${ref[i].length}`);
    for (let j = 0; j < frame.length; j++) {
      const d = Math.abs(frame[j] - ref[i][j]);
      max = Math.max(max, d);
      sum += d;
    }
    count += frame.length;
  });
  return { max, mean: sum / count };
}

/**
 * Tolerance for the same run on another adapter and other kernel variants:
 * Deno (lavapipe through wgpu, no subgroups, naive attention) and Chrome
 * (SwiftShader, subgroups of 4) both measured max 1 level, mean 0.0002 against
 * Node (lavapipe 25 through Dawn, subgroups of 8). f32 reassociation moves a
 * value by ~1e-6 relative, so only values straddling an 8-bit step change, by
 * one level; the bound leaves room for that to grow through the two sampling
 * steps and the dynamic thresholding on other drivers, while a wrong kernel,
 * seed or weight moves pixels by tens of levels everywhere (mean >> 1).
 */
export const FRAME_TOLERANCE: FrameDiff = { max: 3, mean: 0.01 };

/** The demo set's folder and Node's frames of the check run. */
export async function nodeCheckRun(): Promise<{ weights: string; node: GenerateResult }> {
  const weights = await ensureDemoWeights();
  return { weights, node: await generateVideo({ ...CHECK_VIDEO, weights, gpu: await testGpu() }) };
}

/** The committed parity cases whose module this build implements, sorted. */
export function implementedParityCases(): string[] {
  const root = new URL('../fixtures/parity/', import.meta.url).pathname;
  const implemented = new Set(parityModules());
  return readdirSync(root)
    .filter((c) => implemented.has(JSON.parse(readFileSync(`${root}${c}/case.json`, 'utf8')).module))
    .sort();
}
