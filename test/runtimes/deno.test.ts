// Deno: every parity case and the short demo pipeline under Deno's own
// WebGPU (`npm run deno:check`), its frames against Node's of the same seed;
// and the CLI under `deno run`.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ParityResult } from '../../src/parity/run.ts';
import { CHECK_VIDEO } from '../../src/pipeline/check.ts';
import type { GenerateResult } from '../../src/pipeline/generate.ts';
import { FRAME_TOLERANCE, frameDiff, implementedParityCases, nodeCheckRun } from './common.ts';

const root = new URL('../../', import.meta.url).pathname;
const deno = `${root}node_modules/.bin/deno`;

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let node: GenerateResult;
let weights: string;
beforeAll(async () => {
  ({ node, weights } = await nodeCheckRun());
}, 300_000);

describe('Deno', () => {
  it('passes every parity case and makes the check video within tolerance of Node', async () => {
    const r = await run('npm', ['run', '-s', 'deno:check']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { runtime: string; parity: ParityResult[]; video: { frames: string[] } };
    expect(report.runtime).toMatch(/^deno /);
    expect(report.parity.map((p) => p.case).sort()).toEqual(implementedParityCases());
    expect(report.parity.filter((p) => p.status !== 'pass')).toEqual([]);
    const frames = report.video.frames.map((b64) => new Uint8Array(Buffer.from(b64, 'base64')));
    const diff = frameDiff(frames, node.frames.map((f) => f.data));
    console.log(`Deno vs Node frames: max ${diff.max} levels, mean ${diff.mean.toFixed(4)}`);
    expect(diff.max).toBeLessThanOrEqual(FRAME_TOLERANCE.max);
    expect(diff.mean).toBeLessThanOrEqual(FRAME_TOLERANCE.mean);
  }, 600_000);

  it('runs the CLI: parity, and generate writing a GIF', async () => {
    const parity = await run(deno, ['run', '-A', 'bin/kandinsky.js', 'parity', 'test/fixtures/parity/diffusion_v_cosine', '--json']);
    expect(parity.code, parity.stderr).toBe(0);
    expect(JSON.parse(parity.stdout).status).toBe('pass');
    const out = join(mkdtempSync(join(tmpdir(), 'deno-cli-')), 'demo.gif');
    const gen = await run(deno, ['run', '-A', 'bin/kandinsky.js', 'generate', CHECK_VIDEO.prompt, '--weights', weights, '--out', out, '--size', '64x64', '--steps', '2', '--fps', 'low', '--json']);
    expect(gen.code, gen.stderr).toBe(0);
    expect(JSON.parse(gen.stdout)).toMatchObject({ out, frames: 15, width: 64, height: 64 });
    expect(readFileSync(out).subarray(0, 6).toString('latin1')).toBe('GIF89a');
  }, 120_000);
});

