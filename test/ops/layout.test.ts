import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import type { Gpu } from '../../src/gpu/gpu.ts';
import {
  concat,
  embedding,
  maskRows,
  mean,
  meanTokens,
  pad2d,
  permute,
  repeatRows,
  resizeNearest,
  sinusoidalEmbedding,
  sinusoidalFrequencies,
  slice,
  softmax,
  tile,
  transpose,
  upsampleNearest2x,
} from '../../src/ops/layout.ts';
import { type DType, Tensor } from '../../src/tensor/tensor.ts';
import { type FixtureTensor, type OpCase, loadOpCases } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, testGpu } from '../helpers.ts';

type Run = (gpu: Gpu, c: OpCase) => Tensor;

function upload(gpu: Gpu, t: FixtureTensor, dtype: DType = t.data instanceof Int32Array ? 'i32' : 'f32'): Tensor {
  return Tensor.from(gpu, t.data, t.shape, dtype);
}

const x = (gpu: Gpu, c: OpCase): Tensor => upload(gpu, c.tensors.x);
const num = (c: OpCase, k: string): number => c.params[k] as number;

const RUNS: Record<string, Run> = {
  upsampleNearest2x: (g, c) => upsampleNearest2x(x(g, c)),
  resizeNearest: (g, c) => {
    const [h, w] = c.params.size as number[];
    return resizeNearest(x(g, c), h, w);
  },
  pad2d: (g, c) => pad2d(x(g, c), c.params.pads as [number, number, number, number], num(c, 'value')),
  concat: (g, c) => concat(Array.from({ length: num(c, 'n') }, (_, i) => upload(g, c.tensors[`x${i}`])), num(c, 'dim')),
  permute: (g, c) => permute(x(g, c), c.params.perm as number[]),
  transpose: (g, c) => {
    const [a, b] = c.params.dims as number[];
    return transpose(x(g, c), a, b);
  },
  slice: (g, c) => slice(x(g, c), num(c, 'dim'), num(c, 'start'), num(c, 'length')),
  meanTokens: (g, c) => meanTokens(x(g, c)),
  mean: (g, c) => mean(x(g, c), num(c, 'dim')),
  softmax: (g, c) => softmax(x(g, c), num(c, 'dim')),
  // The f16 fixture tables hold f16 values, so the f16 upload is exact.
  embedding: (g, c) => {
    const table = c.tensors.table;
    return embedding(upload(g, c.tensors.ids), upload(g, table, c.name === 'embed_a' ? 'f32' : 'f16'));
  },
  sinusoidalEmbedding: (g, c) => sinusoidalEmbedding(upload(g, c.tensors.positions), num(c, 'dim')),
  repeatRows: (g, c) => repeatRows(x(g, c), num(c, 'times')),
  tile: (g, c) => tile(x(g, c), num(c, 'times')),
  maskRows: (g, c) => maskRows(x(g, c), upload(g, c.tensors.mask), num(c, 'value')),
};

// Pass rule |ours − ref| <= atol + rtol·max|ref|, rtol 0 throughout. Ops
// that only move data are exact.
function tolerance(c: OpCase): number {
  switch (c.params.op) {
    case 'mean':
    case 'meanTokens':
      // Sums of <= 517 values in [−1, 1], tree vs torch's order: a few ulp of
      // partial sums <= 30, divided by the length.
      return 1e-6;
    case 'softmax':
      // Probabilities <= 1: exp within a few ulp (WGSL allows 3 + 2|x| ulp;
      // |x|·p <= 1/e bounds the absolute effect) plus a sum of <= 300 terms.
      return 1e-6;
    case 'sinusoidalEmbedding':
      // torch's f32 exp is within 1 ulp, not always correctly rounded (6 of
      // the 96 frequencies for dim 192 differ from ours by 1 ulp); a frequency
      // f <= 1 off by 1 ulp moves the argument by <= |x|·2^-23. Plus ~1 ulp of
      // sin/cos on each side. The kernel's own sin/cos is checked tighter below.
      return 1e-6 + maxAbs(c.tensors.positions.data) * 2 ** -23;
    default:
      return 0;
  }
}

const cases = await loadOpCases('layout');

describe('layout', () => {
  it('has a runner for every fixture case', () => {
    expect(cases.length).toBeGreaterThan(40);
    for (const c of cases) expect(RUNS[c.params.op as string], `${c.name}: ${String(c.params.op)}`).toBeDefined();
  });

  for (const c of cases) {
    const op = c.params.op as string;
    it(`${c.name} (${op})`, async () => {
      const gpu = await testGpu();
      const out = RUNS[op](gpu, c);
      const ref = c.tensors.out;
      expect(out.shape).toEqual(ref.shape);
      const ours = await out.read();
      expect(maxAbsDiff(ours, ref.data)).toBeLessThanOrEqual(tolerance(c));
    });
  }

  it('sin and cos of the f32 argument within 2e-7 up to |x·f| = 8000', async () => {
    const gpu = await testGpu();
    const dim = 192;
    const positions = [0, 1, 2, 17, 99, 250, 777, 999, 4000, 8000, -999];
    const out = await sinusoidalEmbedding(Tensor.from(gpu, positions, [positions.length], 'i32'), dim).read();
    const freqs = sinusoidalFrequencies(dim / 2);
    // f64 sin/cos of the same f32 arguments: the exact values, rounded.
    const ref = positions.flatMap((x) => {
      const args = [...freqs].map((f) => Math.fround(x * f));
      return [...args.map(Math.sin), ...args.map(Math.cos)];
    });
    // Cephes sinf/cosf are within ~1 ulp; results <= 1 have ulps <= 6e-8.
    expect(maxAbsDiff(out, ref)).toBeLessThanOrEqual(2e-7);
  });

  it('folds reductions past 65535 workgroups into a 2-D grid', async () => {
    const gpu = await testGpu();
    const rows = 70000;
    const data = Float32Array.from({ length: rows * 2 }, (_, i) => i % 7);
    const out = await mean(Tensor.from(gpu, data, [rows, 2]), 1).read();
    expect(maxAbsDiff(out, Float32Array.from({ length: rows }, (_, r) => (data[2 * r] + data[2 * r + 1]) / 2))).toBe(0);
  });

  it('moves i32 tensors bit-exactly', async () => {
    const gpu = await testGpu();
    const ids = Tensor.from(gpu, [1, -2, 3, 2147483647, -2147483648, 6], [2, 3], 'i32');
    expect([...(await transpose(ids, 0, 1).read())]).toEqual([1, 2147483647, -2, -2147483648, 3, 6]);
    expect([...(await pad2d(ids, [0, 0, 1, 0], -7).read())]).toEqual([-7, 1, -2, 3, -7, 2147483647, -2147483648, 6]);
  });

  it('clamps device ids and rejects bad host ids', async () => {
    const gpu = await testGpu();
    const table = Tensor.from(gpu, [0, 1, 10, 11, 20, 21], [3, 2]);
    const ids = Tensor.from(gpu, [-5, 1, 99], [3], 'i32');
    expect([...(await embedding(ids, table).read())]).toEqual([0, 1, 10, 11, 20, 21]);
    expect([...(await embedding(Int32Array.of(2, 0), table).read())]).toEqual([20, 21, 0, 1]);
    expect(() => embedding(Int32Array.of(0, 3), table)).toThrow(/id 3 at position 1 is outside the vocabulary \[0, 3\)/);
  });

  it('reads a table split into several buffers', async () => {
    const gpu = await testGpu();
    const vocab = 10;
    const dim = 6;
    const values = Float32Array.from({ length: vocab * dim }, (_, i) => i / 4);
    // A 64-byte binding limit splits the f16 table (12 bytes a row) into 5 rows a part.
    Object.defineProperty(gpu, 'maxBinding', { value: 64, configurable: true });
    let table: Tensor;
    try {
      table = Tensor.from(gpu, values, [vocab, dim], 'f16');
    } finally {
      delete (gpu as unknown as Record<string, unknown>).maxBinding;
    }
    expect(table.partCount).toBe(2);
    const ids = [9, 0, 4, 5, 7];
    const out = await embedding(Int32Array.from(ids), table).read();
    expect([...out]).toEqual(ids.flatMap((id) => [...values.subarray(id * dim, (id + 1) * dim)]));
  });

  it('throws ShapeError on bad shapes', async () => {
    const gpu = await testGpu();
    const a = Tensor.from(gpu, new Float32Array(24), [2, 3, 4]);
    const bad: [string, () => unknown][] = [
      ['concat', () => concat([a, Tensor.empty(gpu, [2, 4, 3])], 1)],
      ['permute', () => permute(a, [0, 1, 1])],
      ['slice', () => slice(a, 2, 3, 2)],
      ['upsample', () => upsampleNearest2x(a)],
      ['pad', () => pad2d(a, [0, -1, 0, 0])],
      ['meanTokens', () => meanTokens(Tensor.empty(gpu, [2, 3]))],
      ['softmax dim', () => softmax(a, 3)],
      ['mask', () => maskRows(a, Tensor.empty(gpu, [2, 4], 'i32'))],
      ['embedding ids', () => embedding(Tensor.empty(gpu, [3]), Tensor.empty(gpu, [4, 2]))],
      ['sinusoidal dim', () => sinusoidalEmbedding(Tensor.empty(gpu, [3], 'i32'), 7)],
      ['f16 move', () => tile(Tensor.empty(gpu, [2, 2], 'f16'), 2)],
    ];
    for (const [what, f] of bad) expect(f, what).toThrow(ShapeError);
  });
});
