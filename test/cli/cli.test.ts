import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpointFile } from '../../src/io/open.ts';
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

  it('convert turns a torch.save checkpoint into bit-identical safetensors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'convert-'));
    const out = join(dir, 'ckpt.safetensors');
    const src = join(root, 'test/fixtures/parity/unet_keyframe_blocks/checkpoint.pt');
    const r = kandinsky('convert', src, out);
    expect(r.code, r.err).toBe(0);
    const ours = await openCheckpointFile(out);
    const ref = await openCheckpointFile(join(root, 'test/fixtures/parity/unet_keyframe_blocks/checkpoint.safetensors'));
    expect(ours.keys().sort()).toEqual(ref.keys().sort());
    for (const k of ref.keys()) {
      const a = ours.get(k)!;
      const b = ref.get(k)!;
      expect([a.dtype, a.shape], k).toEqual([b.dtype, b.shape]);
      expect(Buffer.compare(Buffer.from(await a.read()), Buffer.from(await b.read())), k).toBe(0);
    }
    await ours.close();
    await ref.close();
    const half = join(dir, 'half.safetensors');
    expect(kandinsky('convert', src, half, '--dtype', 'f16').code).toBe(0);
    const h = await openCheckpointFile(half);
    expect(new Set(h.keys().map((k) => h.get(k)!.dtype))).toEqual(new Set(['F16']));
    await h.close();
    const hostile = kandinsky('convert', join(root, 'test/fixtures/pt/evil_system.pt'), join(dir, 'evil.safetensors'));
    expect(hostile.code).toBe(2);
    expect(hostile.err).toMatch(/UnsafePickleError/);
  });
});
