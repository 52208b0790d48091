import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../src/io/safetensors.ts';

const root = new URL('../../', import.meta.url).pathname;

function kandinsky(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/kandinsky.js'), ...args], { encoding: 'utf8', cwd: root, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function writeCase(dir: string, caseJson: object): Promise<void> {
  writeFileSync(join(dir, 'case.json'), JSON.stringify(caseJson));
  const empty = await encodeSafetensors([]);
  for (const f of ['weights', 'inputs', 'outputs']) writeFileSync(join(dir, `${f}.safetensors`), empty);
}

describe('kandinsky CLI', () => {
  it('info names the adapter', () => {
    const r = kandinsky('info', '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.out);
    expect(info.adapter.description || info.adapter.device).toBeTruthy();
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it('usage errors exit 2', () => {
    expect(kandinsky('bogus').code).toBe(2);
    const r = kandinsky('info', '--nope');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown option --nope/);
    expect(kandinsky('convert', 'only-one-arg').code).toBe(2);
  });

  it('parity exits 2 with a reason for cases it cannot run', async () => {
    const missing = kandinsky('parity', join(tmpdir(), 'no-such-case-dir'));
    expect(missing.code).toBe(2);
    expect(missing.out).toMatch(/case\.json/);

    const dir = mkdtempSync(join(tmpdir(), 'case-'));
    await writeCase(dir, { name: 'x', module: 'bogus_module', config: {}, method: 'forward', args: {}, atol: 1e-4, rtol: 1e-3 });
    const unknown = kandinsky('parity', dir, '--json');
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.out).error).toMatch(/unknown module 'bogus_module'/);

    const bad = mkdtempSync(join(tmpdir(), 'case-'));
    await writeCase(bad, { name: 'x', module: 'diffusion', config: {}, method: 'step', atol: -1, rtol: 0 });
    const r = kandinsky('parity', bad);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/"atol" must be a non-negative number/);
  });
});
