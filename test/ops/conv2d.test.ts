import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import { conv2d, conv2dNaive, convGeometry, convTranspose2d, packConvTransposeWeight, packConvWeight } from '../../src/ops/conv2d.ts';
import { winogradApplies, winogradPays } from '../../src/ops/winograd.ts';
import { Conv2d } from '../../src/nn/layers.ts';
import { WeightBuilder } from '../../src/nn/weights.ts';
import { sizeClass } from '../../src/gpu/pool.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { convVariants, trimmedConvVariants } from './conv-variants.ts';
import { type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, randomArray, testGpu, withBindingLimit } from '../helpers.ts';

// References are exact (f64 from the stored f32/f16 values, rounded to f32).
// We sum K = C·kh·kw ≤ 100 products in f32, two per accumulator update: the
// rounding error is at most ~K·2⁻²⁴·Σ|w·x| ≈ 6e-6·Σ|w·x|, and Σ|w·x| stays
// within a few max|out| for these unit-variance inputs. Measured: ≤ 8e-7.
const RTOL = 2e-5;

const cases = await loadOpCases('conv2d');

interface Params {
  stride?: number;
  padding?: [number, number, number, number];
  f16: boolean;
}

function upload(gpu: Gpu, c: OpCase): { x: Tensor; weight: Tensor; bias?: Tensor } {
  const p = c.params as unknown as Params;
  const t = (k: string, dtype: 'f32' | 'f16' = 'f32') => Tensor.from(gpu, c.tensors[k].data, c.tensors[k].shape, dtype);
  return { x: t('x'), weight: t('weight', p.f16 ? 'f16' : 'f32'), bias: c.tensors.bias ? t('bias') : undefined };
}

async function expectClose(out: Tensor, c: OpCase, what: string): Promise<void> {
  const ref = c.tensors.out.data;
  expect(out.shape).toEqual(c.tensors.out.shape);
  const err = maxAbsDiff(await out.read(), ref);
  expect(err, `${c.name} (${what}): max error ${err}`).toBeLessThanOrEqual(RTOL * maxAbs(ref));
}


const TRIMMED_CASES = ['k3p1', 'k3p1_wide', 'k5s3'];

describe('conv2d', () => {
  const convCases = cases.filter((c) => !c.name.startsWith('t'));
  it.each(convCases.map((c) => c.name))('%s', async (name) => {
    const gpu = await testGpu();
    const c = convCases.find((k) => k.name === name)!;
    const p = c.params as unknown as Params;
    const { x, weight, bias } = upload(gpu, c);
    const list = [...convVariants(gpu), ...(TRIMMED_CASES.includes(name) ? trimmedConvVariants(gpu, p.f16) : [])];
    for (const [what, variant] of list) {
      await expectClose(conv2d(x, weight, bias, { stride: p.stride, padding: p.padding, variant }), c, what);
    }
    await expectClose(conv2dNaive(x, weight, bias, { stride: p.stride, padding: p.padding }), c, 'naive kernel');
    const packed = { packed: packConvWeight(weight), shape: weight.shape };
    await expectClose(conv2d(x, packed, bias, { stride: p.stride, padding: p.padding }), c, 'weight packed once');
    if (winogradApplies(convGeometry(x.shape, weight.shape, { stride: p.stride, padding: p.padding }))) {
      // Winograd's transforms add a few roundings of values near max|out| (coefficients 0, ±1, ±½): within RTOL.
      await expectClose(conv2d(x, packed, bias, { padding: p.padding, algorithm: 'winograd' }), c, 'Winograd F(2x2, 3x3)');
    }
  });

  it('Winograd: tiles in chunks, x and out in parts, odd sizes, f16 kernels: equal to the direct conv', async () => {
    const gpu = await testGpu();
    const [n, ci, h, w, o] = [3, 20, 11, 13, 24];
    const x = Tensor.from(gpu, randomArray(n * ci * h * w, 5), [n, ci, h, w]);
    const bias = Tensor.from(gpu, randomArray(o, 7), [o]);
    for (const dtype of ['f32', 'f16'] as const) {
      const weight = Tensor.from(gpu, randomArray(o * ci * 9, 6), [o, ci, 3, 3], dtype);
      const direct = await conv2d(x, weight, bias, { padding: 1, algorithm: 'direct' }).read();
      const tol = 2e-5 * maxAbs(direct);
      expect(maxAbsDiff(await conv2d(x, weight, bias, { padding: 1, algorithm: 'winograd' }).read(), direct), dtype).toBeLessThanOrEqual(tol);
      // 32 kB bindings: x and out two images per buffer, 21 of each image's 42 tiles per GEMM chunk.
      await withBindingLimit(gpu, 32768, async () => {
        const xs = Tensor.from(gpu, await x.read(), x.shape);
        expect(xs.partCount).toBe(2);
        const out = conv2d(xs, weight, bias, { padding: 1, algorithm: 'winograd' });
        expect(out.partCount).toBe(2);
        expect(maxAbsDiff(await out.read(), direct), `${dtype} in parts`).toBeLessThanOrEqual(tol);
      });
    }
  });

  it('Winograd: chosen for large 3x3 convs, refused where it does not apply', async () => {
    const gpu = await testGpu();
    const g = (c: number, s: number, n = 1) => convGeometry([n, c, s, s], [c, c, 3, 3], { padding: 1 });
    expect(winogradPays(gpu, g(384, 64))).toBe(true);
    expect(winogradPays(gpu, g(64, 16, 30))).toBe(false); // few channels: the GEMMs are too small
    expect(winogradPays(gpu, g(1536, 8))).toBe(false); // few pixels: the kernel transform would dominate
    expect(winogradPays(gpu, convGeometry([1, 64, 64, 64], [64, 64, 3, 3], { padding: 1, stride: 2 }))).toBe(false);
    const x = Tensor.from(gpu, new Float32Array(2 * 16), [1, 2, 4, 4]);
    const w = Tensor.from(gpu, new Float32Array(3 * 2 * 9), [3, 2, 3, 3]);
    expect(() => conv2d(x, w, undefined, { algorithm: 'winograd' })).toThrow(/'winograd' needs a 3x3 kernel, stride 1 and padding 1/);
    expect(() => conv2d(x, w, undefined, { padding: 1, algorithm: 'fast' as never })).toThrow(ShapeError);
  });

  it('a Conv2d layer keeps its kernel packed from loading on: the loaded tensor is freed, forwards do not repack', async () => {
    const gpu = await testGpu();
    const c = cases.find((k) => k.name === 'k3p1')!;
    const p = c.params as unknown as Params;
    const [o, ci, k] = c.tensors.weight.shape;
    const layer = new Conv2d(new WeightBuilder(), { inChannels: ci, outChannels: o, kernel: k, padding: p.padding });
    const { x, weight, bias } = upload(gpu, c);
    const live = gpu.pool.stats().liveBytes;
    layer.weight.set(weight);
    layer.bias!.set(bias!);
    expect(weight.isDisposed).toBe(true);
    expect(layer.weight.t.shape).toEqual([k * k, ci, Math.ceil(o / 8) * 8]);
    // The packed kernel is an exact-size buffer; the loaded one (a pooled size class) is given back.
    expect(gpu.pool.stats().liveBytes - live).toBe(layer.weight.t.byteLength - sizeClass(weight.byteLength));
    await expectClose(layer.forward(x), c, 'layer');
    const before = gpu.dispatchCount;
    layer.forward(x).dispose();
    const direct = gpu.dispatchCount - before;
    const w2 = Tensor.from(gpu, c.tensors.weight.data, c.tensors.weight.shape);
    const start = gpu.dispatchCount;
    conv2d(x, w2, undefined, { padding: p.padding }).dispose();
    expect(gpu.dispatchCount - start, 'a plain tensor is packed per call: one dispatch more').toBe(direct + 1);
  });

  it('splits inputs and outputs larger than a storage binding', async () => {
    const gpu = await testGpu();
    const c = cases.find((k) => k.name === 'k3p1')!;
    const p = c.params as unknown as Params;
    // Rows of x are 1260 bytes (2016 in the subgroup kernel's channels-last
    // copy) and of out 1512: one row per buffer.
    await withBindingLimit(gpu, 2100, async () => {
      const { x, weight, bias } = upload(gpu, c);
      expect(x.partCount).toBe(2);
      for (const [what, variant] of convVariants(gpu)) {
        const out = conv2d(x, weight, bias, { padding: p.padding, variant });
        expect(out.partCount).toBe(2);
        await expectClose(out, c, `parts, ${what}`);
      }
    });
  });

  it('computes the geometry and rejects what it does not support', () => {
    expect(convGeometry([1, 5, 9, 11], [6, 5, 3, 3], { stride: 2, padding: [0, 1, 0, 1] })).toMatchObject({ outH: 4, outW: 5, pad: [0, 1, 0, 1] });
    expect(convGeometry([2, 3, 8, 8], [4, 3, 2, 2], { stride: 2 })).toMatchObject({ batch: 2, outH: 4, outW: 4 });
    expect(convGeometry([1, 3, 5, 5], [4, 3, 3, 3], { padding: 1 })).toMatchObject({ outH: 5, outW: 5, pad: [1, 1, 1, 1] });
    const bad: [readonly number[], readonly number[], object][] = [
      [[1, 3, 5, 5], [4, 2, 3, 3], {}], // channel mismatch
      [[1, 3, 2, 2], [4, 3, 3, 3], {}], // kernel larger than the input
      [[1, 3, 5, 5], [4, 3, 3, 3], { stride: 0 }],
      [[1, 3, 5, 5], [4, 3, 3, 3], { padding: [1, 1] }],
      [[1, 3, 5, 5], [4, 3, 3, 3], { padding: -1 }],
      [[1, 3, 5, 5], [4, 3, 3, 3], { dilation: 2 }], // never ignored
      [[3, 5, 5], [4, 3, 3, 3], {}],
    ];
    for (const [x, w, o] of bad) expect(() => convGeometry(x, w, o), JSON.stringify([x, w, o])).toThrow(ShapeError);
  });

  it('rejects bad operands and variants', async () => {
    const gpu = await testGpu();
    const x = Tensor.from(gpu, new Float32Array(2 * 4 * 4), [1, 2, 4, 4]);
    const w = Tensor.from(gpu, new Float32Array(3 * 2 * 9), [3, 2, 3, 3]);
    expect(() => conv2d(x, w, Tensor.from(gpu, [0, 0], [2]))).toThrow(ShapeError);
    expect(() => conv2d(Tensor.from(gpu, new Float32Array(32), [1, 2, 4, 4], 'f16'), w)).toThrow(ShapeError);
    expect(() => conv2d(x, w, undefined, { variant: { NQ: 9 } })).toThrow(ShapeError);
    expect(() => conv2d(x, Tensor.from(gpu, new Float32Array(3 * 2 * 9), [3, 2, 3, 3], 'f16'), undefined, { variant: { NQ: 3 } })).toThrow(ShapeError);
    expect(() => conv2d(x, w, undefined, { variant: { RG: 5 } })).toThrow(ShapeError);
    expect(() => conv2d(x, Tensor.from(gpu, new Float32Array(3 * 2 * 9), [3, 2, 3, 3], 'f16'), undefined, { variant: { CG: 1 } })).toThrow(ShapeError);
    // A packed kernel that is not the one its shape names (here a 1×1 kernel's packing under a 3×3 shape).
    const w1 = packConvWeight(Tensor.from(gpu, new Float32Array(3 * 2), [3, 2, 1, 1]));
    expect(() => conv2d(x, { packed: w1, shape: [3, 2, 3, 3] })).toThrow(/packed weight \[1, 2, 8\] does not match kernel \[3, 2, 3, 3\]/);
  });
});

describe('convTranspose2d', () => {
  const tCases = cases.filter((c) => c.name.startsWith('t'));
  it.each(tCases.map((c) => c.name))('%s', async (name) => {
    const gpu = await testGpu();
    const c = tCases.find((k) => k.name === name)!;
    const { x, weight, bias } = upload(gpu, c);
    for (const [what, variant] of convVariants(gpu)) await expectClose(convTranspose2d(x, weight, bias, { variant }), c, what);
    await expectClose(convTranspose2d(x, { packed: packConvTransposeWeight(weight), shape: weight.shape }, bias), c, 'weight packed once');
  });

  it('rejects other kernels', async () => {
    const gpu = await testGpu();
    const x = Tensor.from(gpu, new Float32Array(2 * 9), [1, 2, 3, 3]);
    expect(() => convTranspose2d(x, Tensor.from(gpu, new Float32Array(2 * 3 * 9), [2, 3, 3, 3]))).toThrow(ShapeError);
    expect(() => convTranspose2d(x, Tensor.from(gpu, new Float32Array(3 * 3 * 4), [3, 3, 2, 2]))).toThrow(ShapeError);
  });
});
