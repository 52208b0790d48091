// Kernels compiled for devices without subgroups (Deno's wgpu, some browsers):
// every kernel file must still compile once its subgroup code is stood in for.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ShaderCompileError } from '../../src/errors.ts';
import { kernelFiles, kernelUrl, reflectKernel } from '../../src/gpu/kernels.ts';
import { usesSubgroups, withoutSubgroups } from '../../src/gpu/subgroupFree.ts';
import { testGpu } from '../helpers.ts';

describe('kernels without subgroups', () => {
  it('every kernel file compiles with its subgroup code stood in for, line for line, with the same entry points', async () => {
    const gpu = await testGpu();
    const files = await kernelFiles();
    const withSubgroups = files.filter((f) => usesSubgroups(readFileSync(kernelUrl(f), 'utf8')));
    expect(withSubgroups.length).toBeGreaterThan(0);
    for (const file of withSubgroups) {
      const source = readFileSync(kernelUrl(file), 'utf8');
      const code = withoutSubgroups(file, source);
      expect(code).not.toMatch(/enable\s+subgroups|subgroupShuffle\(|subgroupBroadcast\(|subgroup_invocation_id/);
      expect(code.split('\n')).toHaveLength(source.split('\n').length);
      const info = await gpu.device.createShaderModule({ code }).getCompilationInfo();
      expect(info.messages.filter((m) => m.type === 'error').map((m) => `${file}:${m.lineNum}: ${m.message}`)).toEqual([]);
      expect([...reflectKernel(file, code).entries.keys()]).toEqual([...reflectKernel(file, source).entries.keys()]);
    }
  });

  it('replaces nested calls by their value argument and names a construct it has no stand-in for', () => {
    const out = withoutSubgroups('k', 'enable subgroups;\nfn f(x: vec4<f32>, i: u32) -> f32 { return subgroupShuffle(g(x)[min(i, 1u)], i).x; }');
    expect(out).toBe('\nfn f(x: vec4<f32>, i: u32) -> f32 { return (g(x)[min(i, 1u)]).x; }');
    expect(() => withoutSubgroups('k', 'enable subgroups;\nfn f(x: f32) -> f32 { return subgroupAdd(x); }')).toThrow(ShaderCompileError);
    expect(() => withoutSubgroups('k', 'enable subgroups;\nfn f(x: f32) -> f32 { return subgroupAdd(x); }')).toThrow(/k:2: 'subgroupAdd\(' has no stand-in/);
  });
});
