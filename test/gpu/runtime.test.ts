import { describe, expect, it } from 'vitest';
import { DeviceLimitError, ShaderCompileError } from '../../src/errors.ts';
import { kernelFiles, kernelUrl, loadKernel, reflectKernel, selectFeatureBlocks } from '../../src/gpu/kernels.ts';
import { readPackageText } from '../../src/platform.ts';
import { sizeClass } from '../../src/gpu/pool.ts';
import { add, silu } from '../../src/ops/elementwise.ts';
import { keep, tidy } from '../../src/tensor/scope.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { testGpu } from '../helpers.ts';

describe('kernel runtime', () => {
  it('reports the adapter and requests the adapter maxima', async () => {
    const gpu = await testGpu();
    expect(gpu.info.adapter.description || gpu.info.adapter.device).not.toBe('');
    expect(gpu.device.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(gpu.info.limits.maxBufferSize).toBe(gpu.device.limits.maxBufferSize);
  });

  it('reflects bindings and uniform struct layouts from WGSL', () => {
    const { entries, overrides } = reflectKernel(
      'x',
      `struct P { n: u32, s: f32, v: vec2<i32> }
       override TILE: u32 = 4;
       @group(0) @binding(0) var<uniform> params: P;
       @group(0) @binding(1) var<storage, read> a: array<f32>;
       @group(0) @binding(2) var<storage, read_write> out: array<f32>;
       @compute @workgroup_size(TILE) fn main(@builtin(global_invocation_id) g: vec3<u32>) { out[g.x] = a[g.x] * params.s + f32(params.v.x); }`,
    );
    const e = entries.get('main')!;
    expect(e.bindings.map((b) => [b.name, b.kind])).toEqual([
      ['params', 'uniform'],
      ['a', 'read-only-storage'],
      ['out', 'storage'],
    ]);
    expect(e.bindings[0].members).toEqual([
      { name: 'n', offset: 0, kind: 'u32', count: 1 },
      { name: 's', offset: 4, kind: 'f32', count: 1 },
      { name: 'v', offset: 8, kind: 'i32', count: 2 },
    ]);
    expect([...overrides]).toEqual(['TILE']);
  });

  it('names the kernel file and line of a WGSL compile error', async () => {
    const gpu = await testGpu();
    const err = await gpu.addKernel('broken', '@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = nope;\n}\n').catch((e) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.message).toMatch(/kernels\/broken\.wgsl:3:\d+/);
  });

  it('every kernel file compiles on a device without subgroups', async () => {
    const gpu = await testGpu();
    for (const file of await kernelFiles()) {
      // Blanked feature blocks leave no subgroup builtin behind: Tint rejects one without `enable subgroups`.
      const source = selectFeatureBlocks(file, await readPackageText(kernelUrl(file)), new Set());
      expect(source.split('\n').filter((l) => !l.trim().startsWith('//')).join('\n'), file).not.toMatch(/enable subgroups|subgroup[A-Z]\w*\(|subgroup_invocation_id/);
      const kernel = await loadKernel(gpu.device, file, source);
      expect(kernel.entries.size, file).toBeGreaterThan(0);
      if (file === 'matmul') expect([...kernel.entries.keys()].sort()).toEqual(['naive', 'tiled']);
      if (file === 'attention') expect(kernel.entries.has('main')).toBe(true);
    }
  });

  it('feature blocks: kept, blanked or #else, with line numbers preserved; malformed blocks name the line', () => {
    const src = 'a\n// #if subgroups\nb\n// #else\nc\n// #endif\nd';
    expect(selectFeatureBlocks('k', src, new Set(['subgroups'])).split('\n')).toEqual(['a', '', 'b', '', '', '', 'd']);
    expect(selectFeatureBlocks('k', src, new Set()).split('\n')).toEqual(['a', '', '', '', 'c', '', 'd']);
    expect(() => selectFeatureBlocks('k', '// #if subgroups\nx', new Set())).toThrow('kernels/k.wgsl:1: #if without #endif');
    expect(() => selectFeatureBlocks('k', 'x\n// #endif', new Set())).toThrow('kernels/k.wgsl:2: #endif without an #if');
    expect(() => selectFeatureBlocks('k', '// #if a\n// #if b', new Set())).toThrow(/kernels\/k.wgsl:2: nested #if/);
  });

  it('rejects missing or unknown uniform members and bindings', async () => {
    const gpu = await testGpu();
    const x = Tensor.from(gpu, [1, 2], [2]);
    const call = { kernel: 'elementwise', entry: 'unary', overrides: { OP: 0, WG: 256 } };
    expect(() => gpu.dispatch(call, { params: { count: 2 }, a: x.binding(), out: x.binding() }, [1])).toThrow(/a_inner not given/);
    expect(() => gpu.dispatch(call, { params: { count: 2, a_inner: 1, a_size: 2, b_inner: 1, b_size: 1, alpha: 0, beta: 0, bogus: 1 }, a: x.binding(), out: x.binding() }, [1])).toThrow(/no member 'bogus'/);
    expect(() => gpu.dispatch(call, { params: { count: 2, a_inner: 1, a_size: 2, b_inner: 1, b_size: 1, alpha: 0, beta: 0 }, a: x.binding() }, [1])).toThrow(/binding 'out' not given/);
    expect(() => gpu.dispatch(call, { params: { count: 2, a_inner: 1, a_size: 2, b_inner: 1, b_size: 1, alpha: 0, beta: 0 }, a: x.binding(), out: x.binding() }, [70000])).toThrow(DeviceLimitError);
    x.dispose();
  });

  it('caches pipelines per specialisation', async () => {
    const gpu = await testGpu();
    const a = gpu.pipeline({ kernel: 'elementwise', entry: 'unary', overrides: { OP: 1, WG: 256 } });
    const b = gpu.pipeline({ kernel: 'elementwise', entry: 'unary', overrides: { WG: 256, OP: 1 } });
    const c = gpu.pipeline({ kernel: 'elementwise', entry: 'unary', overrides: { OP: 2, WG: 256 } });
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });
});

describe('buffer pool and lifetimes', () => {
  it('size classes are at most 25% larger than the request', () => {
    for (const n of [1, 255, 256, 257, 1000, 4096, 5000, 123457, 1 << 27]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(Math.max(256, n * 1.25));
    }
  });

  it('a repeated step allocates nothing after the first', async () => {
    const gpu = await testGpu();
    const x = Tensor.from(gpu, new Float32Array(1000).fill(0.5), [10, 100]);
    const step = () => tidy(() => add(silu(silu(x)), x));
    step().dispose();
    const before = gpu.pool.stats();
    for (let i = 0; i < 5; i++) step().dispose();
    await gpu.sync();
    const after = gpu.pool.stats();
    expect(after.allocations).toBe(before.allocations);
    expect(after.liveBytes).toBe(before.liveBytes);
    x.dispose();
  });

  it('tidy disposes intermediates and keeps returned tensors', async () => {
    const gpu = await testGpu();
    const live0 = gpu.pool.stats().liveBytes;
    let inner: Tensor | null = null;
    const out = tidy(() => {
      inner = silu(Tensor.from(gpu, [1, 2, 3], [3]));
      return { y: add(inner, inner) };
    });
    expect(inner!.isDisposed).toBe(true);
    expect(out.y.isDisposed).toBe(false);
    expect([...(await out.y.read())].map((v) => +v.toFixed(4))).toEqual([1.4621, 3.5232, 5.7154]);
    out.y.dispose();
    expect(gpu.pool.stats().liveBytes).toBe(live0);
    const kept = tidy(() => keep(Tensor.from(gpu, [1], [1])));
    expect(kept.isDisposed).toBe(false);
    kept.dispose();
  });

  it('views share storage; the last dispose frees it', async () => {
    const gpu = await testGpu();
    const live0 = gpu.pool.stats().liveBytes;
    const t = Tensor.from(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
    const v = t.reshape([3, 2]);
    t.dispose();
    expect([...(await v.read())]).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(gpu.pool.stats().liveBytes).toBe(live0);
    await expect(v.read()).rejects.toThrow(/used after dispose/);
  });

  it('f16 storage round-trips through packed words', async () => {
    const gpu = await testGpu();
    const t = Tensor.from(gpu, [1, -2.5, 65504, 1e-8, 0.1], [5], 'f16');
    expect(t.byteLength).toBe(12);
    const back = await t.read();
    expect([...back.slice(0, 3)]).toEqual([1, -2.5, 65504]);
    expect(back[3]).toBe(0);
    expect(back[4]).toBeCloseTo(0.1, 3);
    t.dispose();
  });

  it('a tensor past the binding limit is split into parts along dim 0', async () => {
    const gpu = await testGpu();
    const limit = gpu.maxBinding;
    const rows = Math.floor(limit / (4 * 1024 * 1024)) + 1; // one row = 4 MiB of f32
    const t = Tensor.empty(gpu, [rows, 1024 * 1024]);
    expect(t.partCount).toBe(2);
    expect(() => t.binding()).toThrow(DeviceLimitError);
    const parts = t.parts();
    expect(parts.map((p) => p.shape[0]).reduce((a, b) => a + b)).toBe(rows);
    for (const p of parts) expect(p.byteLength).toBeLessThanOrEqual(limit);
    for (const p of parts) p.dispose();
    t.dispose();
  });
});
