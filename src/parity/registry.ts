// Module kinds the parity command can run. Each model registers a runner that
// builds the module from the case's config, loads the weights strictly, runs
// the method and returns its outputs by name ("out").
import type { Gpu } from '../gpu/gpu.ts';
import type { LoadedCase } from './case.ts';

export interface ParityOutput {
  shape: number[];
  data: Float32Array | Int32Array;
}

export type ParityRunner = (gpu: Gpu, c: LoadedCase) => Promise<Record<string, ParityOutput>>;

const runners = new Map<string, ParityRunner>();

export function registerParityModule(kind: string, runner: ParityRunner): void {
  runners.set(kind, runner);
}

export function parityRunner(kind: string): ParityRunner | undefined {
  return runners.get(kind);
}

export function parityModules(): string[] {
  return [...runners.keys()].sort();
}
