// `kandinsky generate` refuses bad requests before any work: usage errors and
// runs that cannot fit exit 2 with the reason, and nothing is written.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLAN_UL2 } from '../../src/models/t5/config.ts';

const root = new URL('../../', import.meta.url).pathname;

/** A weights folder whose checkpoints would fail to parse if anything reached them. */
function unreadableWeights(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weights-'));
  for (const f of ['kandinsky_video.pt', 'kandinsky_video_interpolation.pt', 'movq.pt']) writeFileSync(join(dir, f), 'not a checkpoint');
  mkdirSync(join(dir, 'flan-ul2'));
  writeFileSync(join(dir, 'flan-ul2', 'config.json'), JSON.stringify(FLAN_UL2));
  return dir;
}

function generate(...args: string[]) {
  const weights = unreadableWeights();
  const out = join(weights, 'out.gif');
  const r = spawnSync(process.execPath, [join(root, 'bin/kandinsky.js'), 'generate', 'a cat', '--weights', weights, '--out', out, ...args], { encoding: 'utf8', cwd: root, timeout: 120_000 });
  return { code: r.status, err: r.stderr, wrote: existsSync(out) };
}

describe('kandinsky generate: refused up front', () => {
  it('usage errors exit 2: --size not a multiple of 64, zero or negative steps, unknown flags', () => {
    for (const [args, message] of [
      [['--size', '100x64'], /--size 100x64: width and height must be positive multiples of 64/],
      [['--size', '0x512'], /positive multiples of 64/],
      [['--steps', '0'], /steps must be an integer >= 2, got 0/],
      [['--steps', '-3'], /steps must be an integer >= 2, got -3/],
      [['--sizes', '512x512'], /unknown option --sizes/],
    ] as const) {
      const r = generate(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.wrote).toBe(false);
    }
  }, 120_000);

  it('a size that cannot fit exits 2 with the needed and available bytes, before reading weights', () => {
    const r = generate('--size', '8192x8192');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/ResourceError: 8192x8192, fps medium, f32 weights: \w+[\w ]*: .* needs [\d.]+ [MG]iB, [\d.]+ [MG]iB available/);
    expect(r.wrote).toBe(false);
  }, 60_000);
});
