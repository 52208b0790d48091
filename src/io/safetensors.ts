// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data. Everything in the header is validated before use.
import { FormatError, quoteValue } from '../errors.ts';
import { type ByteSource, bytesSource, fileSource } from './byteSource.ts';
import { type Checkpoint, STORED_DTYPE_BYTES, type StoredDType, type TensorEntry } from './checkpoint.ts';

/** Headers beyond this are refused (real ones are a few hundred KiB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const MAX_RANK = 8;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function isStoredDType(d: unknown): d is StoredDType {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(STORED_DTYPE_BYTES, d);
}

export async function openSafetensors(source: ByteSource): Promise<Checkpoint> {
  const name = source.name;
  if (source.size < 8) throw new FormatError(name, `not a safetensors file: ${source.size} bytes is shorter than the 8-byte header length`);
  const lenBytes = await source.read(0, 8);
  const view = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES || headerLen > source.size - 8) {
    throw new FormatError(name, `safetensors header claims ${headerLen} bytes, file has ${source.size - 8} after the length (limit ${MAX_HEADER_BYTES})`);
  }
  const headerBytes = await source.read(8, headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new FormatError(name, `safetensors header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new FormatError(name, 'safetensors header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, TensorEntry>();
  const spans: [number, number, string][] = [];
  for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(name, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new FormatError(name, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as HeaderEntry;
    const where = `tensor '${key}'`;
    if (e === null || typeof e !== 'object') throw new FormatError(name, `${where}: header entry is not an object`);
    if (!isStoredDType(e.dtype)) throw new FormatError(name, `${where}: unknown dtype ${quoteValue(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.length > MAX_RANK || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(name, `${where}: bad shape ${quoteValue(e.shape)}`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw new FormatError(name, `${where}: bad data_offsets ${quoteValue(offs)}`);
    }
    let count = 1;
    for (const d of e.shape) count *= d;
    const bytes = count * STORED_DTYPE_BYTES[e.dtype];
    if (!Number.isSafeInteger(bytes) || bytes !== offs[1] - offs[0]) {
      throw new FormatError(name, `${where}: shape [${e.shape.join(', ')}] × ${e.dtype} is ${bytes} bytes but data_offsets span ${offs[1] - offs[0]}`);
    }
    if (offs[1] > dataSize) throw new FormatError(name, `${where}: data_offsets end ${offs[1]} is past the data (${dataSize} bytes)`);
    spans.push([offs[0], offs[1], key]);
    const begin = dataStart + offs[0];
    entries.set(key, {
      name: key,
      dtype: e.dtype,
      shape: [...e.shape],
      byteLength: bytes,
      read: () => source.read(begin, bytes),
    });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) throw new FormatError(name, `tensors '${spans[i - 1][2]}' and '${spans[i][2]}' overlap in the data`);
  }
  const order = [...entries.keys()].sort((a, b) => (header as Record<string, HeaderEntry>)[a].data_offsets[0] - (header as Record<string, HeaderEntry>)[b].data_offsets[0]);
  return {
    source: name,
    metadata,
    keys: () => order,
    get: (k) => entries.get(k),
    close: () => source.close(),
  };
}

export async function openSafetensorsFile(path: string): Promise<Checkpoint> {
  return openSafetensors(await fileSource(path));
}

export function parseSafetensors(bytes: Uint8Array, name = '<memory>'): Promise<Checkpoint> {
  return openSafetensors(bytesSource(bytes, name));
}

export interface TensorToWrite {
  name: string;
  dtype: StoredDType;
  shape: readonly number[];
  /** Contiguous little-endian bytes; read lazily when the writer reaches it. */
  data: Uint8Array | (() => Promise<Uint8Array>);
}

/** The header bytes (length prefix included) for tensors written in order. */
export function safetensorsHeader(tensors: readonly Omit<TensorToWrite, 'data'>[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    let n = STORED_DTYPE_BYTES[t.dtype];
    for (const d of t.shape) n *= d;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + n] };
    at += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned.
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

/** Serialises tensors into one in-memory safetensors file (small files, tests, the browser). */
export async function encodeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<Uint8Array> {
  const head = safetensorsHeader(tensors, metadata);
  const datas = await Promise.all(tensors.map((t) => (typeof t.data === 'function' ? t.data() : t.data)));
  const total = head.byteLength + datas.reduce((s, d) => s + d.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(head);
  let at = head.byteLength;
  for (const d of datas) {
    out.set(d, at);
    at += d.byteLength;
  }
  return out;
}

/**
 * Streams tensors to a file tensor by tensor (Node/Deno), checking each
 * tensor's byte count against its header entry. Written to `<path>.partial`
 * and renamed when complete, so a failure never leaves a truncated file.
 */
export async function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const fs = await import('node:fs/promises');
  const tmp = `${path}.partial`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.write(safetensorsHeader(tensors, metadata));
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? await t.data() : t.data;
      let n = STORED_DTYPE_BYTES[t.dtype];
      for (const d of t.shape) n *= d;
      if (data.byteLength !== n) throw new FormatError(path, `tensor '${t.name}' has ${data.byteLength} bytes, its header says ${n}`);
      await handle.write(data);
    }
    await handle.close();
    await fs.rename(tmp, path);
  } catch (e) {
    await handle.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
