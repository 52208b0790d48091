import { describe, expect, it } from 'vitest';
import { OpProfile } from '../../src/gpu/profile.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { REAL_GENERATION, costGeneration, projectSeconds } from '../../src/pipeline/projection.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { testGpu } from '../helpers.ts';

describe('op profile', () => {
  it('counts dispatches, bound bytes and the wrappers’ flops while running them', async () => {
    const gpu = await testGpu();
    const a = Tensor.from(gpu, [1, 2, 3, 4, 5, 6], [2, 3]);
    const b = Tensor.from(gpu, [1, 0, 0, 1, 1, 1], [3, 2]);
    gpu.profile = new OpProfile();
    const out = matmul(a, b);
    const counted = gpu.profile.families.get('matmul')!;
    gpu.profile = null;
    expect(counted.flops).toBe(2 * 2 * 2 * 3);
    expect(counted.dispatches).toBe(1);
    expect(counted.bytes).toBeGreaterThanOrEqual(4 * (6 + 6 + 4));
    expect(Array.from(await out.read())).toEqual([4, 5, 10, 11]);
    [a, b, out].forEach((t) => t.dispose());
  });

  it('a dry run counts and does not run', async () => {
    const gpu = await testGpu();
    const a = Tensor.from(gpu, [1, 2, 3, 4], [2, 2]);
    const out = Tensor.from(gpu, [-1, -1, -1, -1], [2, 2]);
    gpu.profile = new OpProfile(true);
    // Binds out as the product's output: a real dispatch would overwrite it.
    const product = matmul(a, a);
    const flops = gpu.profile.families.get('matmul')!.flops;
    gpu.profile = null;
    expect(flops).toBe(16);
    expect(Array.from(await out.read())).toEqual([-1, -1, -1, -1]);
    expect(Array.from(await product.read())).not.toEqual([7, 10, 15, 22]);
    [a, out, product].forEach((t) => t.dispose());
  });
});

describe('generation projection', () => {
  it('costs every stage of a real 512×512 generation without running it, and frees what it allocated', async () => {
    const gpu = await testGpu();
    const t0 = performance.now();
    const medium = costGeneration(gpu, REAL_GENERATION);
    expect(performance.now() - t0).toBeLessThan(60_000);
    expect(gpu.pool.stats().freeBytes).toBe(0);
    expect(medium.map((s) => [s.stage, s.calls])).toEqual([
      ['text', 32],
      ['keyframes', 50],
      ['interpolation 1', 50],
      ['decode', 57],
    ]);
    const flops = (stage: string, family: string) => medium.find((s) => s.stage === stage)!.families.get(family)?.flops ?? 0;
    // Per sampler step, the keyframe U-Net's 3×3 convs alone: at least level 0's
    // (init conv + 2 × num_blocks ResNetBlocks of 2 hidden 3×3 convs) on 30 frames of 64×64.
    const level0 = 2 * 30 * 64 * 64 * 9 * 192 * 192 * 2 * 2 * 3;
    expect(flops('keyframes', 'conv2d') / 50).toBeGreaterThan(level0);
    for (const stage of ['keyframes', 'interpolation 1']) {
      for (const family of ['matmul', 'conv2d', 'attention']) expect(flops(stage, family), `${stage} ${family}`).toBeGreaterThan(0);
    }
    // Twice the steps, twice the sampling work; a low-fps run has no interpolation.
    const doubled = costGeneration(gpu, { ...REAL_GENERATION, steps: 100 });
    expect(doubled[1].families.get('conv2d')!.flops).toBe(2 * flops('keyframes', 'conv2d'));
    expect(costGeneration(gpu, { ...REAL_GENERATION, fps: 'low' }).map((s) => s.stage)).toEqual(['text', 'keyframes', 'decode']);

    const seconds = projectSeconds(medium, { gflops: { matmul: 1000, conv2d: 1000, attention: 1000 }, gbps: 100 });
    const stage = seconds.find((s) => s.stage === 'keyframes')!;
    expect(stage.byFamily.conv2d).toBeCloseTo(flops('keyframes', 'conv2d') / 1e12, 6);
    expect(stage.seconds).toBeCloseTo(Object.values(stage.byFamily).reduce((a, b) => a + b, 0), 6);
    expect(() => projectSeconds(medium, { gflops: { matmul: 1 }, gbps: 1 })).toThrow(/no measured throughput for (conv2d|attention)/);
  });
});
