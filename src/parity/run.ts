// `kandinsky parity <case-dir> [--json]`: exit 0 all pass, 1 a tolerance
// failed, 2 the case could not be run.
import type { Gpu } from '../gpu/gpu.ts';
import { FormatError, KandinskyError, ShapeError } from '../errors.ts';
import type { FolderLike } from '../io/folder.ts';
import { loadCase } from './case.ts';
import './modules.ts';
import { parityModules, parityRunner } from './registry.ts';

export interface OutputVerdict {
  name: string;
  max_abs_err: number;
  max_abs_ref: number;
  tolerance: number;
  pass: boolean;
}

export interface ParityResult {
  case: string;
  module: string;
  status: 'pass' | 'fail' | 'error';
  outputs: OutputVerdict[];
  error?: string;
}

export function compare(name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number): OutputVerdict {
  let err = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i] - ref[i]);
    // NaN in ours is an infinite error, never a pass.
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  const tolerance = atol + rtol * maxRef;
  return { name, max_abs_err: err, max_abs_ref: maxRef, tolerance, pass: err <= tolerance };
}

export async function runParity(gpu: () => Promise<Gpu>, dir: FolderLike): Promise<ParityResult> {
  let name = typeof dir === 'string' ? dir : dir.name;
  let module = '?';
  try {
    const c = await loadCase(dir);
    try {
      name = c.spec.name;
      module = c.spec.module;
      const runner = parityRunner(module);
      if (!runner) throw new FormatError(`${c.dir}/case.json`, `unknown module '${module}' (this build runs: ${parityModules().join(', ') || 'none'})`);
      const outs = await runner(await gpu(), c);
      const verdicts: OutputVerdict[] = [];
      for (const [key, ref] of c.outputs) {
        const got = outs[key];
        if (!got) throw new FormatError(`${c.dir}/outputs.safetensors`, `the module produced no output '${key}'`);
        if (got.shape.join('x') !== ref.shape.join('x')) {
          throw new ShapeError('parity', `output '${key}' has shape [${got.shape.join(', ')}], reference [${ref.shape.join(', ')}]`);
        }
        verdicts.push(compare(key, got.data, ref.data, c.spec.atol, c.spec.rtol));
      }
      return { case: name, module, status: verdicts.every((v) => v.pass) ? 'pass' : 'fail', outputs: verdicts };
    } finally {
      await c.close();
    }
  } catch (e) {
    if (!(e instanceof KandinskyError)) throw e;
    return { case: name, module, status: 'error', outputs: [], error: e.message };
  }
}

export function formatParity(r: ParityResult): string {
  if (r.status === 'error') return `${r.case}: cannot run: ${r.error}`;
  return r.outputs
    .map((o) => `${r.case} ${o.name}: max_abs_err ${o.max_abs_err.toExponential(3)}  max_abs_ref ${o.max_abs_ref.toExponential(3)}  tol ${o.tolerance.toExponential(3)}  ${o.pass ? 'PASS' : 'FAIL'}`)
    .join('\n');
}

export function parityExitCode(r: ParityResult): number {
  return r.status === 'pass' ? 0 : r.status === 'fail' ? 1 : 2;
}
