// Every committed parity case whose module this build implements must pass
// through the same path as `kandinsky parity`.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parityModules } from '../../src/parity/registry.ts';
import { formatParity, runParity } from '../../src/parity/run.ts';
import { testGpu } from '../helpers.ts';

const root = new URL('../fixtures/parity/', import.meta.url).pathname;
const cases = readdirSync(root)
  .sort()
  .map((name) => ({ name, module: JSON.parse(readFileSync(join(root, name, 'case.json'), 'utf8')).module as string }));

describe('parity cases', () => {
  const implemented = new Set(parityModules());
  for (const c of cases.filter((c) => implemented.has(c.module))) {
    it(c.name, async () => {
      const r = await runParity(testGpu, join(root, c.name));
      expect(r.status, formatParity(r)).toBe('pass');
    });
  }
});
