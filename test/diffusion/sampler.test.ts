import { describe, expect, it } from 'vitest';
import { NumericsError } from '../../src/errors.ts';
import { type GuidedModel, sample } from '../../src/diffusion/sampler.ts';
import { makeSchedule } from '../../src/diffusion/schedule.ts';
import { stridedTimes } from '../../src/diffusion/step.ts';
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

  it('strided: calls the model at Kandinsky 3 times, scaled by 1000 // n, and ends at index 0', async () => {
    expect(stridedTimes(1000, 50).slice(0, 3)).toEqual([999, 979, 959]);
    expect(stridedTimes(1000, 50)).toHaveLength(50);
    expect(stridedTimes(1000, 50).at(-1)).toBe(19);
    expect(stridedTimes(1000, 7)).toHaveLength(8); // range(999, 0, -142), as upstream
    expect(() => stridedTimes(1000, 0)).toThrow(RangeError);
    const gpu = await testGpu();
    const long = makeSchedule({ schedule: 'cosine', timesteps: 1000, percentile: 0.99 });
    const seen: number[] = [];
    const steps: number[] = [];
    const spy: GuidedModel = (x, time, u) => (seen.push(time), model(x, time, u));
    const out = await sample(gpu, {
      schedule: long,
      shape: [1, 4, 4, 4],
      seed: 3,
      stream: 1,
      guidance: 3,
      vPrediction: false,
      strided: { times: stridedTimes(1000, 4), eta: 1 },
      model: spy,
      stage: 'image',
      onStep: (done, total) => steps.push(done * 100 + total),
    });
    const data = (await out.read()) as Float32Array;
    out.dispose();
    expect(seen).toEqual([999, 749, 499, 249]);
    expect(steps).toEqual([104, 204, 304, 404]);
    expect(data.every(Number.isFinite)).toBe(true);
  });
});
