import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { packConvWeight } from '../../src/ops/conv2d.ts';
import { conv3d, conv3dNaive } from '../../src/ops/conv3d.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { convVariants, trimmedConvVariants } from './conv-variants.ts';
import { type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, testGpu, withBindingLimit } from '../helpers.ts';

// References are exact (f64, rounded to f32). K = C·kt·kh·kw ≤ 162 products
// summed in f32, two per accumulator update: error ≲ K·2⁻²⁴·Σ|w·x|, with
// Σ|w·x| a few max|out| here, so ~1e-5·max|out| at worst. Measured: ≤ 6e-7.
const RTOL = 3e-5;

const cases = await loadOpCases('conv3d');

interface Params {
  frames: number;
  padding: [number, number, number];
  f16: boolean;
}

function upload(gpu: Gpu, c: OpCase): { x: Tensor; weight: Tensor; bias: Tensor } {
  const p = c.params as unknown as Params;
  const t = (k: string, dtype: 'f32' | 'f16' = 'f32') => Tensor.from(gpu, c.tensors[k].data, c.tensors[k].shape, dtype);
  return { x: t('x'), weight: t('weight', p.f16 ? 'f16' : 'f32'), bias: t('bias') };
}

async function expectClose(out: Tensor, c: OpCase, what: string): Promise<void> {
  const ref = c.tensors.out.data;
  expect(out.shape).toEqual(c.tensors.out.shape);
  const err = maxAbsDiff(await out.read(), ref);
  expect(err, `${c.name} (${what}): max error ${err}`).toBeLessThanOrEqual(RTOL * maxAbs(ref));
}


const TRIMMED_CASES = ['f3'];

describe('conv3d on (b·t, C, H, W)', () => {
  it.each(cases.map((c) => c.name))('%s', async (name) => {
    const gpu = await testGpu();
    const c = cases.find((k) => k.name === name)!;
    const p = c.params as unknown as Params;
    const { x, weight, bias } = upload(gpu, c);
    const list = [...convVariants(gpu), ...(TRIMMED_CASES.includes(name) ? trimmedConvVariants(gpu, p.f16) : [])];
    for (const [what, variant] of list) await expectClose(conv3d(x, weight, bias, { frames: p.frames, padding: p.padding, variant }), c, what);
    await expectClose(conv3dNaive(x, weight, bias, { frames: p.frames, padding: p.padding }), c, 'naive kernel');
    await expectClose(conv3d(x, { packed: packConvWeight(weight), shape: weight.shape }, bias, { frames: p.frames, padding: p.padding }), c, 'weight packed once');
  });

  it('reads neighbouring frames across storage buffers', async () => {
    const gpu = await testGpu();
    const c = cases.find((k) => k.name === 't3')!;
    const p = c.params as unknown as Params;
    // Rows of x are 480 bytes (640 in the subgroup kernel's channels-last
    // copy): 4 per buffer, so videos of 5 frames straddle buffers.
    await withBindingLimit(gpu, 1920, async () => {
      const { x, weight, bias } = upload(gpu, c);
      expect(x.partCount).toBe(3);
      for (const [what, variant] of convVariants(gpu)) {
        const out = conv3d(x, weight, bias, { frames: p.frames, padding: p.padding, variant });
        expect(out.partCount).toBeGreaterThan(1);
        await expectClose(out, c, `parts, ${what}`);
      }
    });
  });

  it('rejects what it does not support', async () => {
    const gpu = await testGpu();
    const x = Tensor.from(gpu, new Float32Array(6 * 2 * 9), [6, 2, 3, 3]);
    const w = (kt: number, kh: number, kw: number, c = 2) => Tensor.from(gpu, new Float32Array(3 * c * kt * kh * kw), [3, c, kt, kh, kw]);
    expect(() => conv3d(x, w(3, 1, 1), undefined, { frames: 4, padding: [1, 0, 0] })).toThrow(ShapeError); // 6 rows are not videos of 4
    expect(() => conv3d(x, w(3, 1, 1), undefined, { frames: 3, padding: [0, 0, 0] })).toThrow(ShapeError); // not 'same'
    expect(() => conv3d(x, w(3, 3, 3, 4), undefined, { frames: 3, padding: [1, 1, 1] })).toThrow(ShapeError); // channels
    expect(() => conv3d(x, w(3, 1, 1), undefined, { frames: 3, padding: [1, 0, 0], stride: 2 } as never)).toThrow(ShapeError);
  });
});
