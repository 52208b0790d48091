// Mutation fuzzing of every reader of untrusted files. Each mutated input must
// end in success or a typed KandinskyError naming the problem - never another
// exception, a hang, or runaway memory - within a per-input time bound.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { KandinskyError } from '../../src/errors.ts';
import { bytesSource } from '../../src/io/byteSource.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';
import { openPt } from '../../src/io/pt.ts';
import { openSafetensors } from '../../src/io/safetensors.ts';
import { parseCaseJson } from '../../src/parity/case.ts';

export interface FuzzTarget {
  name: string;
  seeds: Uint8Array[];
  /** Structure-aware mutations on top of the byte-level ones. */
  mutate?: (seed: Uint8Array, rng: Rng) => Uint8Array;
  run: (input: Uint8Array) => Promise<void>;
}

export interface FuzzReport {
  target: string;
  inputs: number;
  ok: number;
  /** Typed errors by class name. */
  errors: Record<string, number>;
  /** Untyped exceptions and bound violations: must be empty. */
  failures: { input: string; error: string }[];
  slowestMs: number;
}

export class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x7b, 0x7d, 0x22, 0x2e, 0x2f];

/** Byte-level mutations: truncation, flips, interesting bytes, splices, lying lengths. */
export function mutateBytes(seed: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(seed);
  switch (rng.int(7)) {
    case 0:
      return b.subarray(0, rng.int(b.length + 1));
    case 1: {
      for (let i = 0, n = 1 + rng.int(8); i < n && b.length; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    }
    case 2: {
      for (let i = 0, n = 1 + rng.int(4); i < n && b.length; i++) b[rng.int(b.length)] = rng.pick(INTERESTING);
      return b;
    }
    case 3: {
      // overwrite a 4- or 8-byte little-endian field with an extreme value
      if (b.length < 8) return b;
      const at = rng.int(b.length - 8);
      const v = new DataView(b.buffer);
      const big = rng.pick([0xffffffff, 0x7fffffff, 0x80000000, 0, 1, b.length, b.length + 1]);
      v.setUint32(at, big, true);
      if (rng.int(2)) v.setUint32(at + 4, rng.pick([0, 0xffffffff, 0x10000000]), true);
      return b;
    }
    case 4: {
      // duplicate a chunk in place (nesting, repeated entries)
      const from = rng.int(b.length + 1);
      const len = rng.int(Math.min(64, b.length - from) + 1);
      const at = rng.int(b.length + 1);
      const out = new Uint8Array(b.length + len);
      out.set(b.subarray(0, at));
      out.set(b.subarray(from, from + len), at);
      out.set(b.subarray(at), at + len);
      return out;
    }
    case 5: {
      // delete a chunk
      const at = rng.int(b.length + 1);
      const len = rng.int(32);
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + len)]);
    }
    default:
      return new Uint8Array(rng.int(64)).map(() => rng.int(256));
  }
}

async function drain(ck: Checkpoint): Promise<void> {
  try {
    for (const k of ck.keys()) await ck.get(k)!.read();
  } finally {
    await ck.close();
  }
}

function latin1(b: Uint8Array): string {
  return new TextDecoder('latin1').decode(b);
}

/** safetensors: byte mutations and header-JSON mutations. */
export function safetensorsTarget(seeds: Uint8Array[]): FuzzTarget {
  return {
    name: 'safetensors',
    seeds,
    mutate(seed, rng) {
      const len = Number(new DataView(seed.buffer, seed.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(seed.subarray(8, 8 + len)));
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const e = header[rng.pick(names)];
      switch (rng.int(7)) {
        case 0:
          e.data_offsets = [rng.int(4096), rng.int(2 ** 40)];
          break;
        case 1:
          e.shape = [2 ** rng.int(60), rng.int(5)];
          break;
        case 2:
          e.dtype = rng.pick(['F8', 'Q4', 'f32', '', 7, null]);
          break;
        case 3:
          e.data_offsets = header[rng.pick(names)].data_offsets;
          break;
        case 4:
          e.shape = rng.pick([null, 'x', [-1], [1.5], Array(100).fill(1)]);
          break;
        case 5:
          header.__metadata__ = rng.pick([{ a: 1 }, [], 'x', { k: 'v' }]);
          break;
        default:
          header[`..${'/x'.repeat(rng.int(5))}`] = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
      }
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + seed.length - 8 - len);
      new DataView(out.buffer).setBigUint64(0, BigInt(rng.int(8) === 0 ? 2 ** 60 : json.length), true);
      out.set(json, 8);
      out.set(seed.subarray(8 + len), 8 + json.length);
      return out;
    },
    run: async (input) => drain(await openSafetensors(bytesSource(input, 'fuzz.safetensors'))),
  };
}

/** Pulls the entries out of a torch zip seed so the pickle can be mutated and re-zipped. */
function rezip(entries: Record<string, Uint8Array>, level: 0 | 1): Uint8Array {
  const files: Record<string, [Uint8Array, { level: 0 | 1 }]> = {};
  for (const [k, v] of Object.entries(entries)) files[k] = [v, { level }];
  return zipSync(files);
}

export function ptTarget(seeds: Uint8Array[], unzip: (b: Uint8Array) => Record<string, Uint8Array>): FuzzTarget {
  const unzipped = new Map(seeds.map((s) => [s, unzip(s)]));
  // Deflating a bomb costs ~0.3 s: one per seed, built on first use.
  const bombs = new Map<Uint8Array, Uint8Array>();
  return {
    name: 'pt',
    seeds,
    mutate(seed, rng) {
      const entries = { ...unzipped.get(seed)! };
      const names = Object.keys(entries);
      const pkl = names.find((n) => n.endsWith('data.pkl'))!;
      switch (rng.int(6)) {
        case 0:
          entries[pkl] = mutateBytes(entries[pkl], rng);
          break;
        case 1: {
          // deep nesting: EMPTY_LIST + MARK ... wrapped around the pickle body
          const depth = 1 + rng.int(20000);
          const body = new Uint8Array(depth * 2 + 4);
          body.set([0x80, 2]);
          for (let i = 0; i < depth; i++) body.set([0x5d, 0x28], 2 + 2 * i);
          body.set([0x2e], 2 + 2 * depth);
          entries[pkl] = body;
          break;
        }
        case 2:
          entries[`${pkl.split('/')[0]}/../../etc/passwd`] = new Uint8Array(4);
          break;
        case 3: {
          // a storage entry shorter than the tensors that view it
          const data = names.filter((n) => n.includes('/data/'));
          if (data.length) entries[rng.pick(data)] = entries[rng.pick(data)].subarray(0, rng.int(16));
          break;
        }
        case 4: {
          // zip bomb: a highly compressible 2 MiB entry
          let bomb = bombs.get(seed);
          if (!bomb) {
            bomb = rezip({ ...entries, [`${pkl.split('/')[0]}/data/bomb`]: new Uint8Array(2 << 20) }, 1);
            bombs.set(seed, bomb);
          }
          return bomb;
        }
        default: {
          // a forbidden global spliced into the pickle
          const evil = new TextEncoder().encode(`c${rng.pick(['os', 'posix', 'builtins', 'subprocess'])}\n${rng.pick(['system', 'eval', 'Popen', 'exec'])}\n`);
          const p = entries[pkl];
          const at = 2 + rng.int(Math.max(1, p.length - 3));
          entries[pkl] = Uint8Array.from([...p.subarray(0, at), ...evil, ...p.subarray(at)]);
        }
      }
      return rezip(entries, rng.int(8) ? 0 : 1);
    },
    run: async (input) => drain(await openPt(bytesSource(input, 'fuzz.pt'))),
  };
}

export function caseJsonTarget(seeds: Uint8Array[]): FuzzTarget {
  return {
    name: 'case.json',
    seeds,
    mutate(seed, rng) {
      const c = JSON.parse(new TextDecoder().decode(seed));
      const k = rng.pick(['name', 'module', 'config', 'method', 'args', 'atol', 'rtol', 'source']);
      c[k] = rng.pick([null, -1, 1e309, 'x', [], {}, { a: { b: [] } }, '', 0, true, 'x'.repeat(rng.int(1000))]);
      return new TextEncoder().encode(rng.int(10) === 0 ? `${'['.repeat(100000)}` : JSON.stringify(c));
    },
    run: async (input) => {
      parseCaseJson(new TextDecoder().decode(input), 'fuzz/case.json');
    },
  };
}

/** Runs `count` inputs (or until `deadline`), alternating structural and byte mutations. */
export async function fuzz(target: FuzzTarget, options: { count: number; seed: number; deadline?: number; maxMsPerInput: number }): Promise<FuzzReport> {
  const rng = new Rng(options.seed);
  const report: FuzzReport = { target: target.name, inputs: 0, ok: 0, errors: {}, failures: [], slowestMs: 0 };
  for (let i = 0; i < options.count && (!options.deadline || Date.now() < options.deadline); i++) {
    const seed = rng.pick(target.seeds);
    let input: Uint8Array;
    try {
      input = target.mutate && rng.int(2) ? target.mutate(seed, rng) : mutateBytes(seed, rng);
    } catch {
      input = mutateBytes(seed, rng);
    }
    const t0 = performance.now();
    try {
      await target.run(input);
      report.ok++;
    } catch (e) {
      if (e instanceof KandinskyError) report.errors[e.name] = (report.errors[e.name] ?? 0) + 1;
      else report.failures.push({ input: latin1(input.subarray(0, 120)), error: `${(e as Error).name}: ${(e as Error).message}`.slice(0, 300) });
    }
    const ms = performance.now() - t0;
    report.slowestMs = Math.max(report.slowestMs, ms);
    if (ms > options.maxMsPerInput) report.failures.push({ input: latin1(input.subarray(0, 120)), error: `took ${ms.toFixed(0)} ms` });
    report.inputs++;
  }
  return report;
}

/** The targets with their seeds: the committed fixtures. */
export function fuzzTargets(): FuzzTarget[] {
  const fixtures = new URL('../fixtures/', import.meta.url).pathname;
  const read = (p: string) => new Uint8Array(readFileSync(join(fixtures, p)));
  const pt = ['dtypes.pt', 'nested.pt', 'views.pt', 'protocol4.pt'].map((f) => read(`pt/${f}`));
  const st = readdirSync(join(fixtures, 'pt'))
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => read(`pt/${f}`));
  const cases = readdirSync(join(fixtures, 'parity')).map((d) => read(`parity/${d}/case.json`));
  return [safetensorsTarget(st), ptTarget(pt, (b) => unzipSync(b)), caseJsonTarget(cases)];
}
