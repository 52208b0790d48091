// Mutation fuzzing of every reader of untrusted files. Each mutated input must
// end in success or a typed KandinskyError naming the problem - never another
// exception, a hang, or runaway memory - within a per-input time bound.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { KandinskyError } from '../../src/errors.ts';
import { MAX_CONFIG_JSON_BYTES, parseJsonText } from '../../src/io/jsonFile.ts';
import { bytesSource } from '../../src/io/byteSource.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';
import { openPt } from '../../src/io/pt.ts';
import { openSafetensors } from '../../src/io/safetensors.ts';
import { parseMoVQConfig } from '../../src/models/movq/config.ts';
import { parseT5Config } from '../../src/models/t5/config.ts';
import { parseUNetConfig } from '../../src/models/unet/config.ts';
import { parseCaseJson } from '../../src/parity/case.ts';
import { DEMO_CONFIG } from '../../src/pipeline/demoWeights.ts';
import { parseModelConfigs } from '../../src/pipeline/weightsFolder.ts';
import { T5Tokenizer } from '../../src/text/tokenizer.ts';

export interface FuzzTarget {
  name: string;
  /** The name the reader is given: every typed error must mention it. */
  file: string;
  seeds: Uint8Array[];
  /** Relative frequency of each seed (default: equal), to spend less of the run on costly seeds. */
  seedWeights?: number[];
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
  /** Typed errors by problem: the message without the file name, numbers and quoted values. */
  problems: Record<string, number>;
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
      const len = Math.min(rng.int(32), b.length - at);
      const out = new Uint8Array(b.length - len);
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + len), at);
      return out;
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
    file: 'fuzz.safetensors',
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
    file: 'fuzz.pt',
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

const CONFIG_PARSERS: Readonly<Record<string, (raw: unknown, source: string) => unknown>> = {
  unet: parseUNetConfig,
  movq: parseMoVQConfig,
  t5_encoder: parseT5Config,
};

/** Parity case.json: the case itself and its module's config. */
export function caseJsonTarget(seeds: Uint8Array[]): FuzzTarget {
  const file = 'fuzz/case.json';
  return {
    name: 'case.json',
    file,
    seeds,
    mutate: mutateJson,
    run: async (input) => {
      const spec = parseCaseJson(new TextDecoder().decode(input), file);
      CONFIG_PARSERS[spec.module]?.(spec.config, `${file} config`);
    },
  };
}

/** tokenizer.json: loaded, then used on a prompt that goes through the charsmap, the Viterbi and the special tokens. */
export function tokenizerJsonTarget(seeds: Uint8Array[], seedWeights?: number[]): FuzzTarget {
  const file = 'fuzz/tokenizer.json';
  return {
    name: 'tokenizer.json',
    file,
    seeds,
    seedWeights,
    mutate: mutateJson,
    run: async (input) => {
      const tokenizer = T5Tokenizer.fromTokenizerJson(new TextDecoder().decode(input), file);
      tokenizer.encodePrompt('A red  car drifting, ﬁne ＡＢＣ 4k video</s><extra_id_1>', 'low quality');
    },
  };
}

/** The T5 encoder's config.json (flan-ul2/config.json). */
export function t5ConfigTarget(seeds: Uint8Array[]): FuzzTarget {
  const file = 'fuzz/flan-ul2/config.json';
  return {
    name: 'config.json (T5)',
    file,
    seeds,
    mutate: mutateJson,
    run: async (input) => {
      parseT5Config(parseJsonOrFail(input, file), file);
    },
  };
}

/** A weights folder's config.json: {"keyframe", "interpolation", "movq"}. */
export function modelConfigsTarget(seeds: Uint8Array[]): FuzzTarget {
  const file = 'fuzz/config.json';
  return {
    name: 'config.json (models)',
    file,
    seeds,
    mutate: mutateJson,
    run: async (input) => {
      parseModelConfigs(new TextDecoder().decode(input), file);
    },
  };
}

function parseJsonOrFail(input: Uint8Array, file: string): unknown {
  return parseJsonText(new TextDecoder().decode(input), file, MAX_CONFIG_JSON_BYTES);
}

const DEPTH = 10_000;
/** Raw JSON texts put in place of a value: wrong types, extreme numbers, deep nesting, bulk. */
const HOSTILE_JSON: readonly string[] = [
  'null',
  'true',
  '-1',
  '0',
  '1.5',
  '1e309',
  '-1e309',
  '9007199254740993',
  '1e300',
  '4294967296',
  '16777217',
  '""',
  '"x"',
  '[]',
  '{}',
  '[1]',
  '{"type":"x"}',
  `${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`,
  `${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}`,
  `"${'x'.repeat(1 << 16)}"`,
  `[${'1,'.repeat(1 << 16)}1]`,
  `[${Array.from({ length: 1 << 12 }, (_, i) => `["p${i}",-1]`).join(',')}]`,
];
const MARKER = '@@HOSTILE@@';

type Slot = [container: Record<string, unknown> | unknown[], key: string | number];

function slots(v: unknown, out: Slot[]): Slot[] {
  if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), slots(x, out)));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) (out.push([v as Record<string, unknown>, k]), slots(x, out));
  return out;
}

/**
 * Structure-aware JSON mutation: a value anywhere in the tree replaced by a
 * hostile one, by another value of the tree (type confusion) or by a nearby
 * number; a key or element removed; an unknown key added.
 */
export function mutateJson(seed: Uint8Array, rng: Rng): Uint8Array {
  const root: unknown = JSON.parse(new TextDecoder().decode(seed));
  const all = slots(root, []);
  if (all.length === 0) return new TextEncoder().encode(rng.pick(HOSTILE_JSON));
  const [container, key] = rng.pick(all);
  const set = (v: unknown) => ((container as Record<string | number, unknown>)[key] = v);
  let raw: string | null = null;
  switch (rng.int(6)) {
    case 0:
    case 1:
      raw = rng.pick(HOSTILE_JSON);
      set(MARKER);
      break;
    case 2: {
      const [c2, k2] = rng.pick(all);
      set(structuredClone((c2 as Record<string | number, unknown>)[k2]));
      break;
    }
    case 3: {
      const v = (container as Record<string | number, unknown>)[key];
      if (typeof v === 'number') set(rng.pick([v + 1, v - 1, -v, v * 2 ** (1 + rng.int(40)), v / 3, 0]));
      else if (typeof v === 'string') set(rng.pick(['', v.slice(1), `${v}x`, v.repeat(1 + rng.int(100)), '\u0000']));
      else raw = rng.pick(HOSTILE_JSON);
      if (raw !== null) set(MARKER);
      break;
    }
    case 4:
      if (Array.isArray(container)) container.splice(key as number, 1);
      else delete container[key as string];
      break;
    default: {
      const objects = all.map(([c]) => c).filter((c): c is Record<string, unknown> => !Array.isArray(c));
      if (objects.length) rng.pick(objects)[`unknown_${rng.int(4)}`] = MARKER;
      raw = rng.pick(HOSTILE_JSON);
    }
  }
  const text = JSON.stringify(root);
  return new TextEncoder().encode(raw === null ? text : text.replace(`"${MARKER}"`, () => raw));
}

function weightedPick<T>(xs: readonly T[], weights: readonly number[], rng: Rng): T {
  let r = rng.next() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < xs.length; i++) if ((r -= weights[i]) < 0) return xs[i];
  return xs[xs.length - 1];
}

/** An error's problem with the file name, numbers and quoted values taken out, for counting by kind. */
export function problemKind(e: Error, file: string): string {
  const detail = e.message
    .split(file)
    .join('')
    .split('\n')[0]
    .replace(/"[^"]*"|'[^']*'|\[[^\]]*\]|\{[^}]*\}|\[.*$/g, '_')
    .replace(/\d+(\.\d+)?/g, 'N')
    .replace(/(JSON|unknown key\(s\)|unknown keys).*$/, '$1')
    .replace(/(,? got | \().*$/, '')
    .replace(/^[\s:]+/, '');
  return `${e.name}: ${detail.slice(0, 90)}`;
}

/** Runs `count` inputs (or until `deadline`), alternating structural and byte mutations. */
export async function fuzz(target: FuzzTarget, options: { count: number; seed: number; deadline?: number; maxMsPerInput: number }): Promise<FuzzReport> {
  const rng = new Rng(options.seed);
  const report: FuzzReport = { target: target.name, inputs: 0, ok: 0, errors: {}, problems: {}, failures: [], slowestMs: 0 };
  for (let i = 0; i < options.count && (!options.deadline || Date.now() < options.deadline); i++) {
    const seed = target.seedWeights ? weightedPick(target.seeds, target.seedWeights, rng) : rng.pick(target.seeds);
    // Let timers run now and then (vitest's worker RPC among them).
    if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
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
      if (e instanceof KandinskyError && e.message.includes(target.file)) {
        report.errors[e.name] = (report.errors[e.name] ?? 0) + 1;
        const kind = problemKind(e, target.file);
        report.problems[kind] = (report.problems[kind] ?? 0) + 1;
      } else {
        const why = e instanceof KandinskyError ? `typed error without the file name: ` : '';
        report.failures.push({ input: latin1(input.subarray(0, 120)), error: `${why}${(e as Error).name}: ${(e as Error).message}`.slice(0, 300) });
      }
    }
    const ms = performance.now() - t0;
    report.slowestMs = Math.max(report.slowestMs, ms);
    if (ms > options.maxMsPerInput) report.failures.push({ input: latin1(input.subarray(0, 120)), error: `took ${ms.toFixed(0)} ms` });
    report.inputs++;
  }
  return report;
}

/** A small tokenizer.json from the fixture: the first `pieces` pieces, three sentinels after them. */
function smallTokenizer(full: Record<string, any>, pieces: number, edit: (t: Record<string, any>) => void): Uint8Array {
  const t = structuredClone(full);
  t.model.vocab = t.model.vocab.slice(0, pieces);
  t.added_tokens = [
    ...t.added_tokens.filter((a: { id: number }) => a.id < 3),
    ...[0, 1, 2].map((n) => ({ id: pieces + n, content: `<extra_id_${n}>`, special: true })),
  ];
  edit(t);
  return new TextEncoder().encode(JSON.stringify(t));
}

/** A report as lines: counts, then each kind of problem by frequency. */
export function describeReport(r: FuzzReport): string {
  const problems = Object.entries(r.problems)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `    ${String(n).padStart(5)}  ${kind}`);
  return [`fuzz ${r.target}: ${r.inputs} inputs, ${r.ok} accepted, typed errors ${JSON.stringify(r.errors)}, slowest ${r.slowestMs.toFixed(0)} ms`, ...problems].join('\n');
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
  // The fixture's charsmap alone is 317 kB of base64 and makes an input ten
  // times costlier: one seed carries it and is picked one time in six, so
  // that 10,000 inputs stay within seconds.
  const tokenizer = JSON.parse(new TextDecoder().decode(read('tokenizer/tokenizer.json')));
  const tokenizers = [
    smallTokenizer(tokenizer, 300, () => {}),
    smallTokenizer(tokenizer, 300, (t) => (t.normalizer = t.normalizer.normalizers[1])),
    smallTokenizer(tokenizer, 100, (t) => {
      t.normalizer = null;
      t.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true }] };
    }),
  ];
  const t5Configs = [read('tokenizer/config.json'), new TextEncoder().encode('{}')];
  const modelConfigs = [new TextEncoder().encode(JSON.stringify(DEMO_CONFIG))];
  return [
    safetensorsTarget(st),
    ptTarget(pt, (b) => unzipSync(b)),
    caseJsonTarget(cases),
    tokenizerJsonTarget(tokenizers, [1, 2.5, 2.5]),
    t5ConfigTarget(t5Configs),
    modelConfigsTarget(modelConfigs),
  ];
}
