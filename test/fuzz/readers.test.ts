// Bounded fuzzing in CI (issue: hostile inputs): 10,000 mutated files per
// format from valid seeds. `npm run fuzz -- --minutes N` runs longer.
import { describe, expect, it } from 'vitest';
import { describeReport, fuzz, fuzzTargets } from './engine.ts';

describe('fuzzing the readers of untrusted files', () => {
  for (const target of fuzzTargets()) {
    it(`${target.name}: 10,000 mutated inputs end in a typed error naming the file, or success`, async () => {
      const report = await fuzz(target, { count: 10_000, seed: 1234, maxMsPerInput: 2000 });
      console.log(describeReport(report));
      expect(report.failures.slice(0, 5)).toEqual([]);
      expect(report.inputs).toBe(10_000);
    }, 180_000);
  }
});
