import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import {
  MATMUL_VARIANTS,
  type MatmulAdapterInfo,
  type MatmulVariant,
  linear,
  linearInto,
  matmul,
  matmulAdapterInfo,
  selectMatmulVariant,
} from '../../src/ops/matmul.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { type FixtureTensor, type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbsDiff, randomArray, testGpu, withBindingLimit } from '../helpers.ts';

// Tolerance: inputs lie in [-1, 1) and the reference is exact (f64), so each
// output carries f32 rounding of at most ~K additions of products <= 1:
// atol = K * 2^-23 covers it with room for summation order (f16 weights are
// exact in f32, so they add no error).
const tolerance = (k: number): number => Math.max(k, 1) * 2 ** -23;

const cases = await loadOpCases('matmul');
const byName = (name: string): OpCase => {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no fixture case ${name}`);
  return c;
};

function upload(gpu: Gpu, t: FixtureTensor | undefined, dtype: 'f32' | 'f16' = 'f32'): Tensor | undefined {
  return t && Tensor.from(gpu, t.data as Float32Array, t.shape, dtype);
}

// The weight operand keeps the f16 storage its fixture was written with.
const F16_CASES = new Set(['f16_plain', 'linear_f16', 'linear_f16_odd_k']);

/** Runs a fixture case through matmul or linear; returns ours, the reference and K. */
async function runCase(gpu: Gpu, c: OpCase, variant?: MatmulVariant): Promise<{ ours: Float32Array; ref: Float32Array; k: number }> {
  const f16 = F16_CASES.has(c.name) ? 'f16' : 'f32';
  const p = c.params as { op: string; transposeA?: boolean; transposeB?: boolean };
  let out: Tensor;
  let k: number;
  if (p.op === 'linear') {
    const x = upload(gpu, c.tensors.x)!;
    const w = upload(gpu, c.tensors.weight, f16)!;
    k = w.shape[1];
    if (variant) {
      out = matmul(x, w, { transposeB: true, bias: upload(gpu, c.tensors.bias), variant });
    } else {
      out = linear(x, w, upload(gpu, c.tensors.bias));
    }
  } else {
    const a = upload(gpu, c.tensors.a)!;
    const b = upload(gpu, c.tensors.b, f16)!;
    k = p.transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1];
    out = matmul(a, b, { transposeA: p.transposeA, transposeB: p.transposeB, bias: upload(gpu, c.tensors.bias), variant });
  }
  expect(out.shape).toEqual(c.tensors.out.shape);
  return { ours: (await out.read()) as Float32Array, ref: c.tensors.out.data as Float32Array, k };
}

describe('matmul', () => {
  it('has its fixture cases', () => {
    expect(cases.map((c) => c.name).sort()).toEqual(
      ['f16_plain', 'linear', 'linear_f16', 'linear_f16_odd_k', 'plain', 'trans_a', 'trans_ab', 'trans_b'].sort(),
    );
  });

  // Every case on the kernel this adapter selects (subgroup on llvmpipe).
  for (const c of cases) {
    it(`${c.name} (selected kernel)`, async () => {
      const gpu = await testGpu();
      const { ours, ref, k } = await runCase(gpu, c);
      expect(maxAbsDiff(ours, ref)).toBeLessThanOrEqual(tolerance(k));
    });
  }

  // The other kernels on cases that together cover both transposes, f16
  // weights in both layouts, bias, batches and K % 4 != 0 (each flag
  // combination compiles its own pipeline, so not every case runs on all).
  const others: [string, MatmulVariant[]][] = [
    ['plain', ['naive', 'tiled', 'shared']],
    ['trans_ab', ['naive', 'tiled', 'shared']],
    ['f16_plain', ['tiled', 'shared']],
    ['linear_f16', ['naive', 'tiled', 'shared']],
  ];
  for (const [name, variants] of others) {
    for (const variant of variants) {
      it(`${name} (${variant})`, async () => {
        const gpu = await testGpu();
        const { ours, ref, k } = await runCase(gpu, byName(name), variant);
        expect(maxAbsDiff(ours, ref)).toBeLessThanOrEqual(tolerance(k));
      });
    }
  }

  it('writes the parts of a split weight into their column ranges', async () => {
    // The path linear() takes per buffer of a weight past the binding limit:
    // the fixture weight in two row ranges [0, 120) and [120, 136) gives the
    // same output as the whole.
    const gpu = await testGpu();
    const c = byName('linear_f16');
    const x = upload(gpu, c.tensors.x)!;
    const [n, k] = c.tensors.weight.shape;
    const w = c.tensors.weight.data as Float32Array;
    const split = 120;
    const top = Tensor.from(gpu, w.subarray(0, split * k), [split, k], 'f16');
    const bottom = Tensor.from(gpu, w.subarray(split * k), [n - split, k], 'f16');
    const bias = upload(gpu, c.tensors.bias);
    const out = Tensor.empty(gpu, [x.size / k, n]);
    linearInto(x, top, bias, out, 0);
    linearInto(x, bottom, bias, out, split);
    const ours = await out.read();
    expect(maxAbsDiff(ours, c.tensors.out.data)).toBeLessThanOrEqual(tolerance(k));
    // Each column is computed the same way whatever part it is in.
    expect(maxAbsDiff(ours, await linear(x, upload(gpu, c.tensors.weight, 'f16')!, bias).read())).toBe(0);
  });

  it('writes the product transposed (transposeOut), bit-identical to the plain product, on every kernel and a split weight', async () => {
    const gpu = await testGpu();
    const transposeLast = (t: Float32Array, batch: number, m: number, n: number) => {
      const r = new Float32Array(t.length);
      for (let z = 0; z < batch; z++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) r[(z * n + j) * m + i] = t[(z * m + i) * n + j];
      return r;
    };
    // trans_ab: batched, both operands transposed; linear_f16: f16 weight, bias (the pointwise conv's shape).
    for (const name of ['trans_ab', 'linear_f16']) {
      const c = byName(name);
      const lin = name === 'linear_f16';
      const a = upload(gpu, lin ? c.tensors.x : c.tensors.a)!;
      const b = upload(gpu, lin ? c.tensors.weight : c.tensors.b, lin ? 'f16' : 'f32')!;
      const p = lin ? { transposeB: true } : (c.params as { transposeA?: boolean; transposeB?: boolean });
      const bias = upload(gpu, c.tensors.bias);
      for (const variant of [undefined, ...MATMUL_VARIANTS.filter((v) => v !== 'subgroup')]) {
        const plain = matmul(a, b, { ...p, bias, variant });
        const t = matmul(a, b, { ...p, bias, variant, transposeOut: true });
        const [m, n] = plain.shape.slice(-2);
        const batch = plain.size / (m * n);
        expect(t.shape, `${name} ${variant}`).toEqual([...plain.shape.slice(0, -2), n, m]);
        expect(maxAbsDiff(await t.read(), transposeLast((await plain.read()) as Float32Array, batch, m, n)), `${name} ${variant ?? 'selected'}`).toBe(0);
      }
    }
    // A weight in two buffers: each part writes its rows of the transposed output.
    const c = byName('linear_f16');
    const x = upload(gpu, c.tensors.x)!;
    const w = upload(gpu, c.tensors.weight, 'f16')!;
    const whole = matmul(x, w, { transposeB: true, transposeOut: true });
    await withBindingLimit(gpu, Math.ceil(w.byteLength / 2 / 16) * 16, async () => {
      const split = Tensor.from(gpu, c.tensors.weight.data as Float32Array, w.shape, 'f16');
      expect(split.partCount).toBeGreaterThan(1);
      expect(maxAbsDiff(await matmul(x, split, { transposeB: true, transposeOut: true }).read(), await whole.read())).toBe(0);
    });
  });

  it('broadcasts a one-batch b and handles K = 0', async () => {
    // Same flags as the 'plain' case (bias, K % 4 != 0): no new pipelines.
    const gpu = await testGpu();
    const [batch, m, k, n] = [3, 5, 9, 6];
    const a = randomArray(batch * m * k, 11);
    const b = randomArray(k * n, 12);
    const bias = randomArray(n, 13);
    const biasT = Tensor.from(gpu, bias, [n]);
    const out = await matmul(Tensor.from(gpu, a, [batch, m, k]), Tensor.from(gpu, b, [1, k, n]), { bias: biasT }).read();
    const ref = new Float32Array(batch * m * n);
    for (let z = 0; z < batch; z++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = bias[j];
          for (let q = 0; q < k; q++) s += a[(z * m + i) * k + q] * b[q * n + j];
          ref[(z * m + i) * n + j] = s;
        }
      }
    }
    expect(maxAbsDiff(out, ref)).toBeLessThanOrEqual(tolerance(k));
    const empty = await matmul(Tensor.empty(gpu, [2, 0]), Tensor.empty(gpu, [0, n]), { bias: biasT }).read();
    expect([...empty]).toEqual([...bias, ...bias]);
  });

  it('rejects mismatched shapes and dtypes', async () => {
    const gpu = await testGpu();
    const a = Tensor.empty(gpu, [4, 8]);
    expect(() => matmul(a, Tensor.empty(gpu, [7, 3]))).toThrow(ShapeError);
    expect(() => matmul(a, Tensor.empty(gpu, [2, 8, 3]))).toThrow(ShapeError);
    expect(() => matmul(Tensor.empty(gpu, [4, 8], 'f16'), Tensor.empty(gpu, [8, 3]))).toThrow(ShapeError);
    expect(() => linear(a, Tensor.empty(gpu, [3, 7]))).toThrow(ShapeError);
    expect(() => linear(a, Tensor.empty(gpu, [3, 8]), Tensor.empty(gpu, [4]))).toThrow(ShapeError);
    expect(() => linearInto(a, Tensor.empty(gpu, [3, 8]), undefined, Tensor.empty(gpu, [4, 5]), 3)).toThrow(ShapeError);
  });

  it('selects a kernel per adapter, overridable', async () => {
    const llvmpipe: MatmulAdapterInfo = { software: true, subgroups: true, subgroupMinSize: 8, subgroupMaxSize: 8 };
    const gpuInfo: MatmulAdapterInfo = { software: false, subgroups: true, subgroupMinSize: 32, subgroupMaxSize: 32 };
    expect(selectMatmulVariant(1024, 1024, 1024, llvmpipe, undefined)).toBe('subgroup');
    expect(selectMatmulVariant(1, 1, 3, llvmpipe, undefined)).toBe('tiled');
    expect(selectMatmulVariant(1024, 1024, 1024, { ...llvmpipe, subgroups: false }, undefined)).toBe('tiled');
    expect(selectMatmulVariant(1024, 1024, 1024, { ...llvmpipe, subgroupMaxSize: 16 }, undefined)).toBe('tiled');
    expect(selectMatmulVariant(1024, 1024, 1024, gpuInfo, undefined)).toBe('shared');
    for (const v of MATMUL_VARIANTS.filter((v) => v !== 'subgroup')) expect(selectMatmulVariant(64, 64, 64, gpuInfo, v)).toBe(v);
    expect(() => selectMatmulVariant(64, 64, 64, gpuInfo, 'subgroup')).toThrow(/subgroup/);
    expect(() => selectMatmulVariant(64, 64, 64, gpuInfo, 'fast')).toThrow(/KANDINSKY_MATMUL_VARIANT/);
    const gpu = await testGpu();
    const info = matmulAdapterInfo(gpu);
    expect(['subgroup', 'shared', 'tiled']).toContain(selectMatmulVariant(256, 256, 256, info, undefined));
  });
});
