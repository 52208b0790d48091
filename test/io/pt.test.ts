// The PyTorch .pt reader: bit-exact tensors against torch's own values,
// hostile files refused with typed errors (and nothing executed), and the zip
// and pickle layers' bounds.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError, UnsafePickleError } from '../../src/errors.ts';
import { type ByteSource, bytesSource } from '../../src/io/byteSource.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';
import { openCheckpoint, openCheckpointFile } from '../../src/io/open.ts';
import { openPt, openPtFile } from '../../src/io/pt.ts';
import { openSafetensorsFile } from '../../src/io/safetensors.ts';
import { ZipArchive, crc32 } from '../../src/io/zip.ts';
import { fixturePath } from '../fixtures.ts';

const pt = (name: string) => fixturePath(`pt/${name}`);

async function expectSame(name: string): Promise<Checkpoint> {
  const ours = await openPtFile(pt(`${name}.pt`));
  const ref = await openSafetensorsFile(pt(`${name}.expected.safetensors`));
  expect(ours.keys()).toEqual(ref.keys());
  for (const key of ref.keys()) {
    const a = ours.get(key)!;
    const b = ref.get(key)!;
    expect([key, a.dtype, a.shape]).toEqual([key, b.dtype, b.shape]);
    const bytes = await a.read();
    expect(bytes.byteLength).toBe(a.byteLength);
    expect(Buffer.from(bytes).equals(Buffer.from(await b.read())), `${name}: '${key}' differs`).toBe(true);
  }
  expect(Object.keys(ours.metadata).sort()).toEqual(Object.keys(ref.metadata).sort());
  for (const [k, v] of Object.entries(ref.metadata)) expect([k, JSON.parse(ours.metadata[k])]).toEqual([k, JSON.parse(v)]);
  await ref.close();
  return ours;
}

describe('pt: valid checkpoints, bit-exact against torch', () => {
  it('all stored dtypes', async () => {
    const c = await expectSame('dtypes');
    expect(c.keys().map((k) => c.get(k)!.dtype)).toEqual(['F32', 'F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL']);
    await c.close();
  });

  it('nested dicts, an OrderedDict state_dict, lists of tensors and metadata', async () => {
    const c = await expectSame('nested');
    expect(c.keys()).toContain('unet.1.num_batches_tracked');
    expect(c.keys()).toContain('projections.text.weight');
    expect(c.keys()).toContain('null_embedding');
    expect(c.keys()).toContain('blocks.1');
    expect(c.metadata.name).toBe('"kandinsky"');
    expect(c.metadata.big).toBe('1180591620717411303424');
    expect(c.metadata.dtype).toBe('"torch.float16"');
    expect(c.metadata.none).toBe('null');
    await c.close();
  });

  it('views: shared storage, offsets, transposes, strides, stride 0, 0-d, empty, Parameter', async () => {
    const c = await expectSame('views');
    const f32 = async (k: string) => {
      const b = await c.get(k)!.read();
      return [...new Float32Array(b.slice().buffer)];
    };
    // grid is arange(24).view(4, 6); the others view the same storage.
    expect(await f32('rows')).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    expect((await f32('transposed')).slice(0, 5)).toEqual([0, 6, 12, 18, 1]);
    expect(await f32('strided')).toEqual([7, 9, 11, 13, 15, 17, 19, 21, 23]);
    expect(await f32('expanded')).toEqual([0, 1, 2, 0, 1, 2]);
    expect(c.get('scalar')!.shape).toEqual([]);
    expect(await f32('scalar')).toEqual([3.5]);
    expect(c.get('empty')!.shape).toEqual([0, 3]);
    expect((await c.get('empty')!.read()).byteLength).toBe(0);
    await c.close();
  });

  it('protocol 4 (FRAME, STACK_GLOBAL, MEMOIZE)', async () => {
    const c = await expectSame('protocol4');
    expect(c.keys()).toEqual(['weight', 'inner.bias']);
    expect(c.metadata['inner.n']).toBe('7');
    await c.close();
  });

  it('is chosen by content, whatever the extension', async () => {
    const c = await openCheckpoint(bytesSource(readFileSync(pt('dtypes.pt')), 'model.bin'));
    expect(c.keys()).toHaveLength(10);
    await c.close();
    const d = await openCheckpointFile(pt('views.pt'));
    expect(d.keys()).toContain('transposed');
    await d.close();
  });
});

describe('pt: hostile files', () => {
  let dir: string;
  let marker: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kandinsky-pt-'));
    marker = join(dir, 'marker');
    // The payloads run `touch "$KANDINSKY_PT_MARKER"` if anything executes them.
    process.env.KANDINSKY_PT_MARKER = marker;
  });
  afterAll(() => {
    delete process.env.KANDINSKY_PT_MARKER;
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['evil_system.pt', 'posix.system'],
    ['evil_eval.pt', '__builtin__.eval'],
    ['evil_system_p4.pt', 'posix.system'],
    ['whole_module.pt', 'torch.nn.modules.linear.Linear'],
  ])('%s is an UnsafePickleError naming %s, and nothing runs', async (file, global) => {
    for (const open of [openPtFile, openCheckpointFile]) {
      const err = await open(pt(file)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafePickleError);
      expect((err as Error).message).toContain(`'${global}'`);
      expect((err as Error).message).toContain(file);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it.each([
    ['legacy.pt', /legacy \(pre-1\.6.*torch>=1\.6/],
    ['torchscript.pt', /TorchScript/],
    ['truncated.pt', /end-of-central-directory.*truncated/],
    ['traversal.pt', /'\.\.\/evil\.txt'.*path traversal/],
    ['deep.pt', /nested deeper than 64/],
  ])('%s is a FormatError: %s', async (file, re) => {
    const err = await openCheckpointFile(pt(file)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err).not.toBeInstanceOf(UnsafePickleError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).toContain(file);
  });
});

// --- a tiny pickle writer for hand-made pickles ----------------------------
const enc = new TextEncoder();
const u32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
const MARK = 0x28, STOP = 0x2e, EMPTY_DICT = 0x7d, EMPTY_LIST = 0x5d, EMPTY_TUPLE = 0x29, TUPLE = 0x74;
const REDUCE = 0x52, SETITEM = 0x73, SETITEMS = 0x75, APPEND = 0x61, BUILD = 0x62, BINPERSID = 0x51, NEWFALSE = 0x89;
const STACK_GLOBAL = 0x93, MEMOIZE = 0x94;
const str = (s: string) => {
  const b = enc.encode(s);
  return [0x58, ...u32(b.length), ...b];
};
const short = (s: string) => [0x8c, s.length, ...enc.encode(s)];
const int = (n: number) => {
  if (n >= -(2 ** 31) && n < 2 ** 31) return [0x4a, ...u32(n >>> 0)];
  const bytes: number[] = [];
  for (let v = BigInt(n); bytes.length === 0 || v !== 0n; v >>= 8n) bytes.push(Number(v & 255n));
  if (bytes[bytes.length - 1] & 0x80) bytes.push(0);
  return [0x8a, bytes.length, ...bytes];
};
const global = (m: string, n: string) => [0x63, ...enc.encode(`${m}\n${n}\n`)];
const tuple = (xs: number[]) => [MARK, ...xs.flatMap(int), TUPLE];
const dict = (items: [string, number[]][]) => [EMPTY_DICT, MARK, ...items.flatMap(([k, v]) => [...str(k), ...v]), SETITEMS];
const pickle = (...body: number[][]) => new Uint8Array([0x80, 2, ...body.flat(), STOP]);
const tensor = (key: string, type: string, numel: number, offset: number, shape: number[], stride: number[]) => [
  ...global('torch._utils', '_rebuild_tensor_v2'),
  MARK,
  ...[MARK, ...str('storage'), ...global('torch', type), ...str(key), ...str('cpu'), ...int(numel), TUPLE, BINPERSID],
  ...int(offset),
  ...tuple(shape),
  ...tuple(stride),
  NEWFALSE,
  ...[...global('collections', 'OrderedDict'), EMPTY_TUPLE, REDUCE],
  TUPLE,
  REDUCE,
];

/** A zip laid out like torch's, written by fflate (stored entries, no data descriptors). */
function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, extra: Record<string, Uint8Array> = {}): ByteSource {
  const files: Record<string, [Uint8Array, { level: 0 }]> = { 'archive/data.pkl': [pkl, { level: 0 }] };
  for (const [k, v] of Object.entries(storages)) files[`archive/data/${k}`] = [v, { level: 0 }];
  for (const [k, v] of Object.entries(extra)) files[k] = [v, { level: 0 }];
  return bytesSource(zipSync(files), 'hand.pt');
}

async function ptError(src: ByteSource): Promise<Error> {
  const err = await openPt(src).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, 'expected openPt to fail').toBeInstanceOf(FormatError);
  expect(err!.message).toContain('hand.pt');
  return err!;
}

describe('pt: restricted unpickler', () => {
  const f32 = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);

  it('reads a hand-made state dict', async () => {
    const c = await openPt(torchZip(pickle(dict([['w', tensor('0', 'FloatStorage', 6, 0, [2, 3], [3, 1])], ['t', tensor('0', 'FloatStorage', 6, 1, [2, 2], [1, 3])]])), { 0: f32 }));
    expect(c.keys()).toEqual(['w', 't']);
    expect([...new Float32Array((await c.get('w')!.read()).slice().buffer)]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...new Float32Array((await c.get('t')!.read()).slice().buffer)]).toEqual([2, 5, 3, 6]);
    await c.close();
  });

  it('refuses callables and object construction that are not allow-listed', async () => {
    const cases: [number[], RegExp][] = [
      [[...global('os', 'system'), ...str('touch x'), 0x85, REDUCE], /'os\.system' is not on the allow-list/],
      [[...global('subprocess', 'Popen')], /'subprocess\.Popen'/],
      [[EMPTY_DICT, EMPTY_TUPLE, REDUCE], /REDUCE calls a dict/],
      [[...global('torch', 'FloatStorage'), EMPTY_TUPLE, REDUCE], /REDUCE calls a torch\.FloatStorage/],
      [[EMPTY_DICT, ...str('x'), APPEND], /APPEND on a dict/],
      [[EMPTY_LIST, ...str('k'), ...str('v'), SETITEM], /SETITEM on a list/],
      [[EMPTY_LIST, EMPTY_DICT, BUILD], /BUILD \(__setstate__\) on a list/],
      [[...global('collections', 'OrderedDict'), EMPTY_TUPLE, 0x81], /NEWOBJ constructs arbitrary objects/],
      [[MARK, 0x69, ...enc.encode('os\nsystem\n')], /INST constructs arbitrary objects/],
    ];
    for (const [body, re] of cases) {
      const err = await ptError(torchZip(pickle(body)));
      expect(err, re.source).toBeInstanceOf(UnsafePickleError);
      expect(err.message).toMatch(re);
    }
  });

  it('checks STACK_GLOBAL names, memoised or not, before building anything', async () => {
    // Protocol 4 style: the names are memoised strings fetched back with BINGET.
    const viaMemo = new Uint8Array([0x80, 4, ...short('posix'), MEMOIZE, ...short('system'), MEMOIZE, 0x68, 0, 0x68, 1, STACK_GLOBAL, ...str('id'), 0x85, REDUCE, STOP]);
    expect(await ptError(torchZip(viaMemo))).toBeInstanceOf(UnsafePickleError);
    // A structural error comes first in the stream (REDUCE on an empty stack),
    // but the forbidden global later on is still what is reported.
    const late = new Uint8Array([0x80, 4, REDUCE, ...short('builtins'), ...short('exec'), STACK_GLOBAL, STOP]);
    const err = await ptError(torchZip(late));
    expect(err).toBeInstanceOf(UnsafePickleError);
    expect(err.message).toContain("'builtins.exec'");
  });

  it('bounds structure: cycles, shared sub-trees, MARK depth, memo, truncation', async () => {
    const cases: [Uint8Array, RegExp][] = [
      // {'a': L} with L = [L]
      [pickle([EMPTY_DICT, ...str('a'), EMPTY_LIST, 0x71, 1, 0x68, 1, APPEND, SETITEM]), /cyclic/],
      // D = {'self': D}
      [pickle([EMPTY_DICT, 0x71, 0, ...str('self'), 0x68, 0, SETITEM]), /cyclic/],
      // 60 levels of [x, x]: 2^60 leaves if expanded naively
      [pickle([EMPTY_DICT, ...str('bomb'), EMPTY_LIST, ...Array.from({ length: 60 }, (_, i) => [0x71, i, 0x30, EMPTY_LIST, 0x68, i, APPEND, 0x68, i, APPEND]).flat(), SETITEM]), /more than 250000 nodes \(shared sub-trees\?\)/],
      [pickle(new Array(2000).fill(MARK)), /MARKs nested deeper than 1000/],
      [pickle([0x68, 5]), /memo index 5 was never stored/],
      [pickle([...str('x'), BINPERSID]), /persistent id is a str, expected \('storage'/],
      [new Uint8Array([0x80, 2, EMPTY_DICT]), /truncated pickle/],
      [new Uint8Array([0x80, 2, EMPTY_DICT, STOP, 0]), /1 bytes after STOP/],
      [pickle([0xff]), /unknown opcode 0xff/],
      [pickle([0x53, ...enc.encode("'x'\n")]), /STRING is not supported/],
      [pickle([...str('x'), SETITEM]), /stack underflow/],
      [pickle([0x58, 0xff, 0xff, 0xff, 0x7f]), /exceeds the limit|truncated/],
      [pickle(tensor('0', 'FloatStorage', 6, 0, [2, 3], [3, 1])), /holds a torch\.Tensor, not a dict/],
    ];
    for (const [pkl, re] of cases) {
      const err = await ptError(torchZip(pkl, { 0: f32 }));
      expect(err, re.source).not.toBeInstanceOf(UnsafePickleError);
      expect(err.message, re.source).toMatch(re);
    }
  });

  it('validates storages and views against the archive', async () => {
    const one = (t: number[]) => pickle(dict([['w', t]]));
    const cases: [ByteSource, RegExp][] = [
      [torchZip(one(tensor('1', 'FloatStorage', 6, 0, [6], [1])), { 0: f32 }), /storage '1' has no entry archive\/data\/1/],
      [torchZip(one(tensor('0', 'FloatStorage', 7, 0, [6], [1])), { 0: f32 }), /holds 7 × F32 = 28 bytes but its entry has 24/],
      [torchZip(one(tensor('0', 'FloatStorage', 6, 1, [2, 3], [3, 1])), { 0: f32 }), /reaches element 6 of storage '0' with 6 elements/],
      [torchZip(one(tensor('0', 'FloatStorage', 6, 0, [2, 3], [3])), { 0: f32 }), /size has 2 dims but stride has 1/],
      [torchZip(one(tensor('../0', 'FloatStorage', 6, 0, [6], [1])), { 0: f32 }), /storage key "\.\.\/0" is not a plain name/],
      [torchZip(one(tensor('0', 'ComplexFloatStorage', 3, 0, [3], [1])), { 0: f32 }), /'torch\.ComplexFloatStorage' is not on the allow-list/],
      [torchZip(pickle(dict([['a', tensor('0', 'FloatStorage', 6, 0, [6], [1])], ['b', tensor('0', 'IntStorage', 6, 0, [6], [1])]])), { 0: f32 }), /used as F32\[6\] and as I32\[6\]/],
      [torchZip(one(tensor('0', 'FloatStorage', 6, 0, [6], [1])), { 0: f32 }, { 'archive/byteorder': enc.encode('big') }), /big-endian/],
    ];
    for (const [src, re] of cases) expect((await ptError(src)).message).toMatch(re);
    const ok = await openPt(torchZip(one(tensor('0', 'FloatStorage', 6, 0, [6], [1])), { 0: f32 }, { 'archive/byteorder': enc.encode('little') }));
    expect(ok.keys()).toEqual(['w']);
  });

  it('reads deflated archives (fflate) and checks their CRCs', async () => {
    const pkl = pickle(dict([['w', tensor('0', 'FloatStorage', 6, 0, [6], [1])]]));
    const zipped = zipSync({ 'archive/data.pkl': pkl, 'archive/data/0': f32 }, { level: 6 });
    const c = await openPt(bytesSource(zipped, 'hand.pt'));
    expect(new Uint8Array(await c.get('w')!.read())).toEqual(f32);
    // Flip a byte of the stored (level 0) pickle: the CRC catches it.
    const stored = zipSync({ 'archive/data.pkl': [pkl, { level: 0 }], 'archive/data/0': [f32, { level: 0 }] });
    stored[Buffer.from(stored).indexOf(Buffer.from('storage')) + 1] ^= 1;
    expect((await ptError(bytesSource(stored, 'hand.pt'))).message).toMatch(/CRC mismatch/);
  });
});

// --- a zip writer that can lie, and can describe 10 GB without holding it ---
interface VEntry {
  name: string;
  data?: Uint8Array;
  /** Zero bytes of this length, never materialised. */
  virtualSize?: number;
  method?: number;
  /** Declared uncompressed size (defaults to the real one). */
  size?: number;
  flags?: number;
  /** Name in the local header (defaults to `name`). */
  localName?: string;
  /** Central directory points here instead of the real local header. */
  headerOffset?: number;
}

class Writer {
  parts: { at: number; bytes: Uint8Array }[] = [];
  at = 0;
  bytes(b: Uint8Array) {
    this.parts.push({ at: this.at, bytes: b });
    this.at += b.length;
  }
  fields(spec: [number, 2 | 4 | 8][]) {
    const b = new Uint8Array(spec.reduce((s, [, n]) => s + n, 0));
    const v = new DataView(b.buffer);
    let p = 0;
    for (const [x, n] of spec) {
      if (n === 2) v.setUint16(p, x, true);
      else if (n === 4) v.setUint32(p, x, true);
      else v.setBigUint64(p, BigInt(x), true);
      p += n;
    }
    this.bytes(b);
  }
}

function virtualZip(entries: VEntry[], zip64 = false): ByteSource & { bytesRead: number } {
  const w = new Writer();
  const cd: (() => void)[] = [];
  for (const e of entries) {
    const lho = w.at;
    const csize = e.data?.length ?? e.virtualSize ?? 0;
    const size = e.size ?? csize;
    const crc = e.data && !e.method ? crc32(e.data) : 0;
    const name = enc.encode(e.name);
    const localName = enc.encode(e.localName ?? e.name);
    const S = zip64 ? 0xffffffff : 0;
    const local64 = zip64 ? [[1, 2], [16, 2], [size, 8], [csize, 8]] as [number, 2 | 4 | 8][] : [];
    w.fields([[0x04034b50, 4], [45, 2], [e.flags ?? 0, 2], [e.method ?? 0, 2], [0, 2], [0, 2], [crc, 4], [S || csize, 4], [S || size, 4], [localName.length, 2], [zip64 ? 20 : 0, 2]]);
    w.bytes(localName);
    if (zip64) w.fields(local64);
    if (e.data) w.bytes(e.data);
    else w.at += csize;
    cd.push(() => {
      const off = e.headerOffset ?? lho;
      w.fields([[0x02014b50, 4], [45, 2], [45, 2], [e.flags ?? 0, 2], [e.method ?? 0, 2], [0, 2], [0, 2], [crc, 4], [S || csize, 4], [S || size, 4], [name.length, 2], [zip64 ? 28 : 0, 2], [0, 2], [0, 2], [0, 2], [0, 4], [S || off, 4]]);
      w.bytes(name);
      if (zip64) w.fields([[1, 2], [24, 2], [size, 8], [csize, 8], [off, 8]]);
    });
  }
  const cdOffset = w.at;
  for (const f of cd) f();
  const cdSize = w.at - cdOffset;
  const n = entries.length;
  if (zip64) {
    const rec = w.at;
    w.fields([[0x06064b50, 4], [44, 8], [45, 2], [45, 2], [0, 4], [0, 4], [n, 8], [n, 8], [cdSize, 8], [cdOffset, 8]]);
    w.fields([[0x07064b50, 4], [0, 4], [rec, 8], [1, 4]]);
    w.fields([[0x06054b50, 4], [0, 2], [0, 2], [0xffff, 2], [0xffff, 2], [0xffffffff, 4], [0xffffffff, 4], [0, 2]]);
  } else {
    w.fields([[0x06054b50, 4], [0, 2], [0, 2], [n, 2], [n, 2], [cdSize, 4], [cdOffset, 4], [0, 2]]);
  }
  const size = w.at;
  const src = {
    name: 'hand.pt',
    size,
    bytesRead: 0,
    async read(offset: number, length: number) {
      if (offset < 0 || offset + length > size) throw new FormatError('hand.pt', 'read outside the file');
      src.bytesRead += length;
      const out = new Uint8Array(length);
      for (const p of w.parts) {
        const lo = Math.max(offset, p.at);
        const hi = Math.min(offset + length, p.at + p.bytes.length);
        if (lo < hi) out.set(p.bytes.subarray(lo - p.at, hi - p.at), lo - offset);
      }
      return out;
    },
    async close() {},
  };
  return src;
}

describe('pt: zip layer', () => {
  it('opens a 10 GB zip64 checkpoint from its central directory, reading tensors on demand', async () => {
    const numel = 2_500_000_000; // 10 GB of float32
    const pkl = pickle(dict([
      ['big', tensor('0', 'FloatStorage', numel, 0, [50_000, 50_000], [50_000, 1])],
      ['tail', tensor('0', 'FloatStorage', numel, numel - 4, [2, 2], [1, 2])],
    ]));
    const src = virtualZip([{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/data/0', virtualSize: numel * 4 }], true);
    expect(src.size).toBeGreaterThan(10e9);
    const c = await openPt(src);
    expect(c.keys()).toEqual(['big', 'tail']);
    expect(c.get('big')!.shape).toEqual([50_000, 50_000]);
    expect(c.get('big')!.byteLength).toBe(10e9);
    expect(src.bytesRead).toBeLessThan(200_000);
    expect(await c.get('tail')!.read()).toEqual(new Uint8Array(16));
    expect(src.bytesRead).toBeLessThan(200_000);
  });

  it('refuses malformed and hostile archives', async () => {
    const data = new Uint8Array([1, 2, 3, 4]);
    const bomb = deflateSync(new Uint8Array(4 << 20), { level: 9 });
    const small = deflateSync(new Uint8Array(100_000), { level: 9 });
    const cases: [ByteSource, RegExp][] = [
      [virtualZip([{ name: 'a', data }, { name: 'b', data, headerOffset: 0 }]), /entries '(a|b)' and '(a|b)' overlap/],
      [virtualZip([{ name: 'a', data }, { name: 'a', data }]), /entry 'a': appears twice/],
      [virtualZip([{ name: '/etc/passwd', data }]), /unsafe name: is an absolute path/],
      [virtualZip([{ name: 'a\\..\\b', data }]), /unsafe name: contains a backslash/],
      [virtualZip([{ name: 'a', data, method: 12 }]), /compression method 12 is not supported/],
      [virtualZip([{ name: 'a', data, flags: 1 }]), /is encrypted/],
      [virtualZip([{ name: 'a', data, headerOffset: 1_000_000 }]), /runs past the central directory/],
      [virtualZip([{ name: 'a', data: bomb, method: 8, size: 4 << 20 }]), /zip bomb/],
    ];
    for (const [src, re] of cases) {
      const err = await ZipArchive.open(src).catch((e: unknown) => e as Error);
      expect(err, re.source).toBeInstanceOf(FormatError);
      expect((err as Error).message, re.source).toMatch(re);
      expect((err as Error).message).toContain('hand.pt');
    }
    const many = virtualZip([{ name: 'a', data }, { name: 'b', data }, { name: 'c', data }]);
    await expect(ZipArchive.open(many, { maxEntries: 2 })).rejects.toThrow(/3 entries exceeds the limit of 2/);
    // Problems only visible in the local header or the data show up on read.
    const onRead: [ByteSource, RegExp][] = [
      [virtualZip([{ name: 'a', data, localName: 'b' }]), /local header names a different file/],
      [virtualZip([{ name: 'a', data: small, method: 8, size: 1000 }]), /inflates past its declared size of 1000/],
      [virtualZip([{ name: 'a', data: data, method: 8, size: 10 }]), /corrupt deflate data|inflates to/],
    ];
    for (const [src, re] of onRead) {
      const zip = await ZipArchive.open(src);
      await expect(zip.read('a'), re.source).rejects.toThrow(re);
    }
    const tooShort = bytesSource(new Uint8Array(10), 'hand.pt');
    await expect(ZipArchive.open(tooShort)).rejects.toThrow(/too short for a zip/);
  });
});
