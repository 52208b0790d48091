// The safetensors reader against valid and hostile headers, content sniffing,
// and sharded checkpoints through *.index.json.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.ts';
import { bytesSource } from '../../src/io/byteSource.ts';
import { openCheckpoint, openCheckpointFile } from '../../src/io/open.ts';
import { type TensorToWrite, encodeSafetensors, parseSafetensors } from '../../src/io/safetensors.ts';
import { fixturePath } from '../fixtures.ts';

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

const tensors: TensorToWrite[] = [
  { name: 'a.weight', dtype: 'F32', shape: [2, 3], data: bytes(new Float32Array([1, 2, 3, 4, 5, -6])) },
  { name: 'a.bias', dtype: 'F16', shape: [3], data: bytes(new Uint16Array([0x3c00, 0x4000, 0xc000])) },
  { name: 'ids', dtype: 'I64', shape: [2], data: bytes(new BigInt64Array([-1n, 1n << 40n])) },
  { name: 'mask', dtype: 'BOOL', shape: [1, 2], data: new Uint8Array([1, 0]) },
  { name: 'scalar', dtype: 'BF16', shape: [], data: bytes(new Uint16Array([0x3f80])) },
  { name: 'empty', dtype: 'U8', shape: [0, 4], data: new Uint8Array(0) },
];

/** A safetensors file with an arbitrary header (object or raw text) and `dataLen` data bytes. */
function withHeader(header: unknown, dataLen: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

async function stError(file: Uint8Array): Promise<string> {
  const err = await parseSafetensors(file, 'bad.safetensors').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FormatError);
  expect((err as Error).message).toContain('bad.safetensors');
  return (err as Error).message;
}

describe('safetensors reader', () => {
  it('round-trips encodeSafetensors', async () => {
    const file = await encodeSafetensors(tensors, { format: 'pt', note: 'x' });
    const c = await parseSafetensors(file, 'ok.safetensors');
    expect(c.keys()).toEqual(tensors.map((t) => t.name));
    expect(c.metadata).toEqual({ format: 'pt', note: 'x' });
    for (const t of tensors) {
      const e = c.get(t.name)!;
      expect([e.dtype, e.shape]).toEqual([t.dtype, t.shape]);
      expect(await e.read()).toEqual(t.data);
    }
    // The same bytes through content sniffing.
    const d = await openCheckpoint(bytesSource(file, 'weights.bin'));
    expect(d.keys()).toEqual(c.keys());
  });

  it('refuses hostile headers', async () => {
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 60n, true);
    expect(await stError(huge)).toMatch(/header claims 11529215046068\d+ bytes/);
    expect(await stError(new Uint8Array(5))).toMatch(/shorter than the 8-byte header length/);
    expect(await stError(withHeader('{"a": [1, 2', 0))).toMatch(/not valid UTF-8 JSON/);
    expect(await stError(withHeader('[1, 2]', 0))).toMatch(/not a JSON object/);
    const f32 = (offsets: [number, number], shape = [2]) => ({ dtype: 'F32', shape, data_offsets: offsets });
    expect(await stError(withHeader({ a: f32([0, 8]), b: f32([4, 12]) }, 12))).toMatch(/'a' and 'b' overlap/);
    expect(await stError(withHeader({ a: { dtype: 'F8', shape: [2], data_offsets: [0, 2] } }, 2))).toMatch(/unknown dtype "F8"/);
    expect(await stError(withHeader({ a: f32([0, 12]) }, 12))).toMatch(/\[2\] × F32 is 8 bytes but data_offsets span 12/);
    expect(await stError(withHeader({ a: f32([8, 16]) }, 12))).toMatch(/end 16 is past the data \(12 bytes\)/);
    expect(await stError(withHeader({ a: f32([0, 8], [-2]) }, 8))).toMatch(/bad shape/);
    expect(await stError(withHeader({ a: f32([8, 0]) }, 8))).toMatch(/bad data_offsets/);
    expect(await stError(withHeader({ a: f32([0, 8]), __metadata__: { n: 3 } }, 8))).toMatch(/__metadata__\.n is not a string/);
    // A valid file cut short: the last tensor's data is missing.
    const file = await encodeSafetensors(tensors);
    expect(await stError(file.subarray(0, file.length - 20))).toMatch(/past the data/);
  });

  it('content sniffing refuses what is neither format', async () => {
    const err = await openCheckpoint(bytesSource(new TextEncoder().encode('hello, not a checkpoint'), 'x.ckpt')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/x\.ckpt: not a checkpoint this project reads.*starts 68 65 6c/);
  });
});

describe('sharded checkpoints (*.index.json)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kandinsky-shards-'));
    writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), await encodeSafetensors(tensors.slice(0, 3), { format: 'pt' }));
    writeFileSync(join(dir, 'model-00002-of-00002.safetensors'), await encodeSafetensors(tensors.slice(3)));
    // A shard may be a torch zip as well; it is chosen by content.
    copyFileSync(fixturePath('pt/views.pt'), join(dir, 'extra.pt'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const index = (name: string, weightMap: Record<string, string>, metadata: unknown = { total_size: 123 }) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify({ metadata, weight_map: weightMap }));
    return path;
  };

  it('opens the shards named by the weight map', async () => {
    const map: Record<string, string> = {};
    for (const [i, t] of tensors.entries()) map[t.name] = `model-0000${i < 3 ? 1 : 2}-of-00002.safetensors`;
    map.transposed = 'extra.pt';
    const c = await openCheckpointFile(index('model.safetensors.index.json', map));
    expect(c.keys()).toEqual([...tensors.map((t) => t.name), 'transposed']);
    for (const t of tensors) expect(await c.get(t.name)!.read()).toEqual(t.data);
    expect(c.get('transposed')!.shape).toEqual([6, 4]);
    expect(c.metadata.total_size).toBe('123');
    expect(c.metadata.format).toBe('pt');
    await c.close();
    // diffusers names a variant's index model.safetensors.index.fp16.json.
    const variant = await openCheckpointFile(index('model.safetensors.index.fp16.json', map));
    expect(variant.keys()).toEqual(c.keys());
    await variant.close();
  });

  it('refuses bad indexes with the index file named', async () => {
    const cases: [string, RegExp][] = [
      [index('missing.safetensors.index.json', { nope: 'model-00001-of-00002.safetensors' }), /puts 'nope' in model-00001-of-00002\.safetensors, which has no such tensor/],
      [index('escape.safetensors.index.json', { 'a.weight': '../model-00001-of-00002.safetensors' }), /has an empty, '\.' or '\.\.' component/],
      [index('absolute.safetensors.index.json', { 'a.weight': '/etc/passwd' }), /is absolute/],
      [index('nomap.safetensors.index.json', undefined as unknown as Record<string, string>), /no "weight_map" object/],
    ];
    for (const [path, re] of cases) {
      const err = await openCheckpointFile(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toContain(path);
    }
    const notJson = join(dir, 'broken.safetensors.index.json');
    writeFileSync(notJson, '{"weight_map": ');
    await expect(openCheckpointFile(notJson)).rejects.toThrow(/broken\.safetensors\.index\.json: index is not valid UTF-8 JSON/);
    // A missing shard is reported with its path.
    await expect(openCheckpointFile(index('gone.safetensors.index.json', { x: 'gone.safetensors' }))).rejects.toThrow(/gone\.safetensors: cannot open/);
  });
});
