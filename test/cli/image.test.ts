// `kandinsky image` end to end through the CLI on the tiny Kandinsky 3.0 demo set.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDemoImageWeights } from '../../src/pipeline/demoWeights.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kandinsky-image-cli-'));
const weights = join(dir, 'weights');

function kandinsky(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/kandinsky.js'), ...args], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  mkdirSync(weights);
  await writeDemoImageWeights(weights, join(root, 'test/fixtures/tokenizer'));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kandinsky image', () => {
  it('writes a PNG with progress, refuses to overwrite without --force, and checks its options', () => {
    const out = join(dir, 'cat.png');
    const r = kandinsky('image', 'a cat', '--weights', weights, '--out', out, '--size', '64x128', '--steps', '2', '--negative', 'dog');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/wrote 64x128 image to .*cat\.png \(upstream weights\)/);
    expect(r.err).toMatch(/\[denoise\] 2\/2/);
    expect([...readFileSync(out).subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
    const again = kandinsky('image', 'a cat', '--weights', weights, '--out', out, '--size', '64x64', '--steps', '2');
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/exists; pass --force/);
    expect(kandinsky('image', 'a cat', '--weights', weights, '--out', join(dir, 'cat.gif')).err).toMatch(/\.png/);
    expect(kandinsky('image', 'a cat', '--weights', weights, '--out', join(dir, 'x.png'), '--size', '100x64').code).toBe(2);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const missing = kandinsky('image', 'a cat', '--weights', empty, '--out', join(dir, 'y.png'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/missing kandinsky3\.pt/);
    expect(existsSync(join(dir, 'y.png'))).toBe(false);
  }, 120_000);
});
