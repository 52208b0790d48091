// The short run of the demo set that Node, Deno and Chrome each make for the
// cross-runtime comparison (test/runtimes): 15 keyframes of 64x64, 2 steps,
// no interpolation, seed 0 - seconds on lavapipe, a minute on SwiftShader.
import type { GenerateOptions } from './generate.ts';

export const CHECK_VIDEO = {
  prompt: 'A red car drifting, 4k video',
  width: 64,
  height: 64,
  steps: 2,
  fps: 'low',
  seed: 0,
} as const satisfies Omit<GenerateOptions, 'weights'>;
