import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

describe('npm run bench', () => {
  it('measures the peak, runs the filtered cases and writes the shared JSON format', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin/kandinsky.js'), 'bench', 'rms_norm', '--quick', '--json'], { encoding: 'utf8', cwd: root, timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/peak: [\d.]+ GFLOP\/s f32 FMA, [\d.]+ GB\/s copy/);
    const file = /wrote (\S+\.json)/.exec(r.stdout)?.[1];
    expect(file).toBeDefined();
    const doc = JSON.parse(readFileSync(file!, 'utf8'));
    rmSync(file!);
    expect(Object.keys(doc)).toEqual(expect.arrayContaining(['date', 'runtime', 'adapter', 'peak', 'ops']));
    expect(doc.peak.fma_gflops).toBeGreaterThan(0);
    expect(doc.ops).toHaveLength(1);
    expect(doc.ops[0]).toMatchObject({ op: 'rms_norm', dtype: 'f32', runs: 2, naive_fraction: 1, peers: [] });
    for (const k of ['ms', 'gbps', 'pct_peak', 'naive_ms', 'speedup_vs_naive']) expect(doc.ops[0][k], k).toBeGreaterThan(0);
  });
});
