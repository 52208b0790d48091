import { describe, expect, it } from 'vitest';
import { add, lerp, mul, silu } from '../../src/ops/elementwise.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { maxAbsDiff, randomArray, testGpu } from '../helpers.ts';

describe('elementwise', () => {
  it('silu and broadcast add', async () => {
    const gpu = await testGpu();
    const xs = randomArray(2 * 3 * 5 * 7, 3);
    const bs = randomArray(3, 4);
    const x = Tensor.from(gpu, xs, [2, 3, 5, 7]);
    const b = Tensor.from(gpu, bs, [3, 1, 1]);
    const y = await add(silu(x), b).read();
    const ref = xs.map((v, i) => v / (1 + Math.exp(-v)) + bs[Math.floor(i / 35) % 3]);
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-6);
    expect(maxAbsDiff(await mul(x, x).read(), xs.map((v) => v * v))).toBeLessThan(1e-7);
  });
  it('lerp', async () => {
    const gpu = await testGpu();
    const a = Tensor.from(gpu, [1, 2, 3], [3]);
    const b = Tensor.from(gpu, [5, 6, 7], [3]);
    const w = Tensor.from(gpu, [0.25], [1]);
    expect([...(await lerp(a, b, w).read())]).toEqual([2, 3, 4]);
  });
});
