import { describe, expect, it } from 'vitest';
import { NumericsError } from '../../src/errors.ts';
import { type GuidedModel, sample } from '../../src/diffusion/sampler.ts';
import { makeSchedule } from '../../src/diffusion/schedule.ts';
import { affine, axpby } from '../../src/ops/elementwise.ts';
import { concat } from '../../src/ops/layout.ts';
import { testGpu } from '../helpers.ts';

const schedule = makeSchedule({ schedule: 'cosine', timesteps: 6, percentile: 0.98 });

// Conditional rows predict 0.3·x, unconditional rows -0.2·x.
const model: GuidedModel = (x, _time, withUncond) => {
  if (!withUncond) return affine(x, 0.3, 0);
  const rows = x.shape[0] / 2;
  return concat([affine(x.narrow(0, rows), 0.3, 0), affine(x.narrow(rows, rows), -0.2, 0)], 0);
};

async function run(guidance: number, seed = 7, m: GuidedModel = model) {
  const gpu = await testGpu();
  const out = await sample(gpu, { schedule, shape: [3, 4, 4, 4], seed, stream: 1, guidance, vPrediction: false, model: m, stage: 'keyframes' });
  const data = await out.read();
  out.dispose();
  return data;
}

describe('sampler', () => {
  it('is deterministic for a seed and differs across seeds', async () => {
    const a = await run(5);
    expect(await run(5)).toEqual(a);
    expect(await run(5, 8)).not.toEqual(a);
  });

  it('guidance 0 equals the conditional branch alone', async () => {
    const condOnly: GuidedModel = (x) => affine(x, 0.3, 0);
    expect(await run(0)).toEqual(await run(0, 7, condOnly));
    expect(await run(0)).not.toEqual(await run(1));
  });

  it('guidance combines the halves as (w+1)·cond − w·uncond', async () => {
    // With w = 1 the guided prediction is 2·0.3x + 0.2x = 0.8x.
    const guided: GuidedModel = (x) => affine(x, 0.8, 0);
    const a = await run(1);
    const b = await run(0, 7, guided);
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 5);
  });

  it('reports a NaN with the stage and step', async () => {
    let calls = 0;
    const nanAtStep3: GuidedModel = (x, t, u) => (++calls === 3 ? axpby(Number.NaN, x, 0, x) : model(x, t, u));
    await expect(run(5, 7, nanAtStep3)).rejects.toThrow(NumericsError);
    calls = 0;
    await expect(run(5, 7, nanAtStep3)).rejects.toThrow(/keyframes, step 3\/6/);
  });
});
