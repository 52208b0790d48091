// Counting what a model run does, per kernel family (the kernels/*.wgsl file
// names): dispatches, bytes bound (a bound on the memory traffic of
// memory-bound kernels) and floating-point operations, which the op wrappers
// of the compute-bound families report (multiply-add = 2). With `dryRun` the
// dispatches are counted and not run, so that a real-size configuration can
// be costed on a machine that could not run it in reasonable time (the
// pipeline projection in bench/pipeline.bench.ts).
import { type Binding, isRange } from './gpu.ts';

export interface FamilyCount {
  dispatches: number;
  flops: number;
  bytes: number;
}

export class OpProfile {
  readonly families = new Map<string, FamilyCount>();
  constructor(readonly dryRun = false) {}

  private family(name: string): FamilyCount {
    let f = this.families.get(name);
    if (!f) this.families.set(name, (f = { dispatches: 0, flops: 0, bytes: 0 }));
    return f;
  }

  /** One dispatch of a kernel family with these bindings. */
  dispatch(kernel: string, bindings: Readonly<Record<string, Binding>>): void {
    const f = this.family(kernel);
    f.dispatches++;
    for (const b of Object.values(bindings)) {
      if (isRange(b)) f.bytes += b.size ?? b.buffer.size - (b.offset ?? 0);
    }
  }

  /** Floating-point operations of an op of a kernel family. */
  flops(kernel: string, n: number): void {
    this.family(kernel).flops += n;
  }

  /** Every family's counts times `factor` added to `into` (a run of N identical steps). */
  addTo(into: Map<string, FamilyCount>, factor = 1): void {
    for (const [name, c] of this.families) {
      const t = into.get(name) ?? { dispatches: 0, flops: 0, bytes: 0 };
      into.set(name, { dispatches: t.dispatches + factor * c.dispatches, flops: t.flops + factor * c.flops, bytes: t.bytes + factor * c.bytes });
    }
  }
}
