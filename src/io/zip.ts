// Zip archives read lazily over a ByteSource: the central directory when the
// archive is opened, each entry's bytes only when asked for. Covers what
// torch.save writes (stored entries, data descriptors, zip64 for large files)
// and ordinary deflated zips. Everything the file claims is checked against
// the file before it is used, because a checkpoint is untrusted input.
import { Inflate } from 'fflate';
import { FormatError } from '../errors.ts';
import type { ByteSource } from './byteSource.ts';

export interface ZipLimits {
  /** Entries in the central directory (torch writes one per storage). */
  maxEntries: number;
  /** Bytes of central directory read at open. */
  maxCentralDirectoryBytes: number;
  /** Largest deflated entry inflated into memory. Stored entries are read in ranges and have no limit. */
  maxInflatedBytes: number;
  /** uncompressed / compressed above this, for entries over 1 MiB, is treated as a zip bomb. */
  maxRatio: number;
}

export const DEFAULT_ZIP_LIMITS: Readonly<ZipLimits> = {
  maxEntries: 200_000,
  maxCentralDirectoryBytes: 64 * 1024 * 1024,
  maxInflatedBytes: 1024 * 1024 * 1024,
  // Real deflate tops out near 1032:1 on runs of zeros; torch never deflates.
  maxRatio: 200,
};

/** Entries this small are exempt from the ratio bound (tiny zero-filled files compress absurdly well). */
const RATIO_EXEMPT_BYTES = 1024 * 1024;
/** Compressed bytes fed to the inflater per step, so that a lying entry is caught within one step's output. */
const INFLATE_CHUNK = 64 * 1024;

export interface ZipEntry {
  readonly name: string;
  readonly method: 'stored' | 'deflated';
  /** Uncompressed size in bytes. */
  readonly size: number;
  readonly compressedSize: number;
  readonly crc32: number;
  /** Offset of the local file header. */
  readonly headerOffset: number;
}

interface EntryInfo extends ZipEntry {
  readonly nameBytes: Uint8Array;
  readonly flags: number;
  /** The entry's data must end before this offset (the next header or the central directory). */
  readonly limit: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

function u64(v: DataView, at: number): number {
  // Offsets past 2^53 cannot address a real file; they are corrupt or hostile.
  const big = v.getBigUint64(at, true);
  return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(big);
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a name is unsafe to treat as a path, or undefined if it is fine. */
function unsafeName(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.includes('\0')) return 'contains a NUL byte';
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/')) return 'is an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'starts with a drive letter';
  const parts = name.endsWith('/') ? name.slice(0, -1).split('/') : name.split('/');
  for (const p of parts) {
    if (p === '..') return "has a '..' component (path traversal)";
    if (p === '.' || p === '') return 'has an empty or "." component';
  }
  return undefined;
}

let crcTable: Uint32Array | undefined;
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The zip64 extended-information extra field replaces whichever 32-bit fields are saturated. */
function zip64Fields(extra: Uint8Array, want: { size: boolean; csize: boolean; offset: boolean }, fail: (d: string) => never) {
  const v = dv(extra);
  let at = 0;
  while (at + 4 <= extra.length) {
    const id = v.getUint16(at, true);
    const len = v.getUint16(at + 2, true);
    if (at + 4 + len > extra.length) fail(`extra field 0x${id.toString(16)} runs past the extra data`);
    if (id === 0x0001) {
      let p = at + 4;
      const out: { size?: number; csize?: number; offset?: number } = {};
      const take = () => {
        if (p + 8 > at + 4 + len) fail('zip64 extra field is too short for the fields it must hold');
        const x = u64(v, p);
        p += 8;
        return x;
      };
      if (want.size) out.size = take();
      if (want.csize) out.csize = take();
      if (want.offset) out.offset = take();
      return out;
    }
    at += 4 + len;
  }
  if (want.size || want.csize || want.offset) fail('sizes need a zip64 extra field but there is none');
  return {};
}

export class ZipArchive {
  private readonly byName: Map<string, EntryInfo>;
  private readonly dataOffsets = new Map<EntryInfo, Promise<number>>();

  private constructor(
    readonly source: ByteSource,
    private readonly list: EntryInfo[],
    private readonly limits: ZipLimits,
  ) {
    this.byName = new Map(list.map((e) => [e.name, e]));
  }

  get name(): string {
    return this.source.name;
  }

  /** Reads and validates the central directory; no entry data is read. */
  static async open(source: ByteSource, limits: Partial<ZipLimits> = {}): Promise<ZipArchive> {
    const lim = { ...DEFAULT_ZIP_LIMITS, ...limits };
    const file = source.name;
    const fail = (d: string): never => {
      throw new FormatError(file, `zip: ${d}`);
    };
    if (source.size < 22) fail(`${source.size} bytes is too short for a zip archive (truncated?)`);

    // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the very end.
    const tailLen = Math.min(source.size, 22 + U16_MAX);
    const tailStart = source.size - tailLen;
    const tail = await source.read(tailStart, tailLen);
    const tv = dv(tail);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) === tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) fail('no end-of-central-directory record at the end of the file (truncated or not a zip)');
    const eocdPos = tailStart + eocd;
    let disk = tv.getUint16(eocd + 4, true);
    let cdDisk = tv.getUint16(eocd + 6, true);
    let countDisk: number = tv.getUint16(eocd + 8, true);
    let count: number = tv.getUint16(eocd + 10, true);
    let cdSize: number = tv.getUint32(eocd + 12, true);
    let cdOffset: number = tv.getUint32(eocd + 16, true);
    let cdEnd = eocdPos;

    // Zip64: a locator just before the EOCD points at the zip64 EOCD record.
    if (eocdPos >= 20) {
      const loc = eocdPos - 20 >= tailStart ? tail.subarray(eocd - 20, eocd) : await source.read(eocdPos - 20, 20);
      const lv = dv(loc);
      if (lv.getUint32(0, true) === SIG_ZIP64_LOCATOR) {
        const recPos = u64(lv, 8);
        if (lv.getUint32(4, true) !== 0 || lv.getUint32(16, true) > 1) fail('multi-disk zip64 archives are not supported');
        if (recPos + 56 > eocdPos - 20) fail(`zip64 end-of-central-directory offset ${recPos} is outside the file`);
        const rec = dv(await source.read(recPos, 56));
        if (rec.getUint32(0, true) !== SIG_ZIP64_EOCD) fail(`no zip64 end-of-central-directory record at offset ${recPos}`);
        disk = rec.getUint32(16, true);
        cdDisk = rec.getUint32(20, true);
        countDisk = u64(rec, 24);
        count = u64(rec, 32);
        cdSize = u64(rec, 40);
        cdOffset = u64(rec, 48);
        cdEnd = recPos;
      } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
        fail('end-of-central-directory fields are saturated but there is no zip64 locator');
      }
    }
    if (disk !== 0 || cdDisk !== 0 || countDisk !== count) fail('multi-disk (split) archives are not supported');
    if (count > lim.maxEntries) fail(`${count} entries exceeds the limit of ${lim.maxEntries}`);
    if (cdSize > lim.maxCentralDirectoryBytes) fail(`central directory of ${cdSize} bytes exceeds the limit of ${lim.maxCentralDirectoryBytes}`);
    if (cdOffset + cdSize > cdEnd) fail(`central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record at ${cdEnd} (truncated?)`);
    if (count * 46 > cdSize) fail(`central directory of ${cdSize} bytes cannot hold ${count} entries`);

    const cd = await source.read(cdOffset, cdSize);
    const cv = dv(cd);
    const list: (Omit<EntryInfo, 'limit'> & { limit: number })[] = [];
    const seen = new Set<string>();
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 46 > cdSize || cv.getUint32(at, true) !== SIG_CENTRAL) fail(`central directory entry ${i} at offset ${cdOffset + at} is malformed`);
      const flags = cv.getUint16(at + 8, true);
      const methodCode = cv.getUint16(at + 10, true);
      const crc = cv.getUint32(at + 16, true);
      let csize: number = cv.getUint32(at + 20, true);
      let size: number = cv.getUint32(at + 24, true);
      const nameLen = cv.getUint16(at + 28, true);
      const extraLen = cv.getUint16(at + 30, true);
      const commentLen = cv.getUint16(at + 32, true);
      const diskStart = cv.getUint16(at + 34, true);
      let offset: number = cv.getUint32(at + 42, true);
      const end = at + 46 + nameLen + extraLen + commentLen;
      if (end > cdSize) fail(`central directory entry ${i} runs past the central directory`);
      const nameBytes = cd.subarray(at + 46, at + 46 + nameLen);
      let name = '';
      try {
        name = utf8.decode(nameBytes);
      } catch {
        fail(`entry ${i} has a name that is not valid UTF-8`);
      }
      const entryFail = (d: string): never => fail(`entry '${name}': ${d}`);
      const bad = unsafeName(name);
      if (bad) entryFail(`unsafe name: ${bad}`);
      if (seen.has(name)) entryFail('appears twice');
      seen.add(name);
      const z64 = zip64Fields(
        cd.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen),
        { size: size === U32_MAX, csize: csize === U32_MAX, offset: offset === U32_MAX },
        entryFail,
      );
      size = z64.size ?? size;
      csize = z64.csize ?? csize;
      offset = z64.offset ?? offset;
      if (diskStart !== 0 && diskStart !== U16_MAX) entryFail('lives on another disk');
      if (flags & 0x41) entryFail('is encrypted');
      const method: ZipEntry['method'] =
        methodCode === 0 ? 'stored' : methodCode === 8 ? 'deflated' : entryFail(`compression method ${methodCode} is not supported (only stored and deflated)`);
      if (method === 'stored' && csize !== size) entryFail(`stored entry has compressed size ${csize} but size ${size}`);
      if (method === 'deflated' && size > RATIO_EXEMPT_BYTES && size > lim.maxRatio * csize) {
        entryFail(`inflates ${csize} bytes to ${size} (ratio over ${lim.maxRatio}): refused as a zip bomb`);
      }
      if (offset + 30 + nameLen + csize > cdOffset) entryFail(`data (header at ${offset}, ${csize} bytes) runs past the central directory at ${cdOffset}`);
      list.push({ name, nameBytes, flags, method, size, compressedSize: csize, crc32: crc, headerOffset: offset, limit: cdOffset });
      at = end;
    }
    if (at !== cdSize) fail(`central directory has ${cdSize - at} bytes after its ${count} entries`);

    // Entries must not overlap: overlapping entries are how the worst zip bombs
    // reuse one compressed block many times.
    const byOffset = [...list].sort((a, b) => a.headerOffset - b.headerOffset);
    for (let i = 0; i < byOffset.length; i++) {
      const e = byOffset[i];
      const after = byOffset[i + 1];
      const next = after ? after.headerOffset : cdOffset;
      if (e.headerOffset + 30 + e.nameBytes.length + e.compressedSize > next) {
        fail(after ? `entries '${e.name}' and '${after.name}' overlap` : `entry '${e.name}' runs into the central directory`);
      }
      e.limit = next;
    }
    return new ZipArchive(source, list, lim);
  }

  /** Entries in central-directory order. */
  entries(): readonly ZipEntry[] {
    return this.list;
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  private info(entry: ZipEntry | string): EntryInfo {
    const e = this.byName.get(typeof entry === 'string' ? entry : entry.name);
    if (!e) throw new FormatError(this.name, `zip: no entry '${typeof entry === 'string' ? entry : entry.name}'`);
    return e;
  }

  /** Checks the local header against the central directory once, and returns where the data starts. */
  private dataOffset(e: EntryInfo): Promise<number> {
    let p = this.dataOffsets.get(e);
    if (!p) {
      p = this.readLocalHeader(e);
      this.dataOffsets.set(e, p);
      p.catch(() => this.dataOffsets.delete(e));
    }
    return p;
  }

  private async readLocalHeader(e: EntryInfo): Promise<number> {
    const fail = (d: string): never => {
      throw new FormatError(this.name, `zip: entry '${e.name}': ${d}`);
    };
    if (e.headerOffset + 30 > e.limit) fail(`local header at ${e.headerOffset} is outside the file`);
    const h = dv(await this.source.read(e.headerOffset, 30));
    if (h.getUint32(0, true) !== SIG_LOCAL) fail(`no local file header at offset ${e.headerOffset}`);
    const flags = h.getUint16(6, true);
    const method = h.getUint16(8, true);
    const nameLen = h.getUint16(26, true);
    const extraLen = h.getUint16(28, true);
    const start = e.headerOffset + 30 + nameLen + extraLen;
    if (start + e.compressedSize > e.limit) fail(`data (${e.compressedSize} bytes at ${start}) runs past the next entry or the central directory`);
    if (method !== (e.method === 'stored' ? 0 : 8)) fail(`local header says method ${method}, the central directory says ${e.method}`);
    if ((flags & 0x41) !== (e.flags & 0x41)) fail('local header and central directory disagree on encryption');
    const rest = await this.source.read(e.headerOffset + 30, nameLen + extraLen);
    const localName = rest.subarray(0, nameLen);
    if (nameLen !== e.nameBytes.length || localName.some((b, i) => b !== e.nameBytes[i])) fail('local header names a different file');
    // With a data descriptor (flag bit 3, what torch writes) the local CRC and
    // sizes may be zero; otherwise they must agree with the central directory.
    const crc = h.getUint32(14, true);
    let csize: number = h.getUint32(18, true);
    let size: number = h.getUint32(22, true);
    if (!(flags & 0x08) || crc !== 0 || csize !== 0 || size !== 0) {
      if (csize === U32_MAX || size === U32_MAX) {
        const z = zip64Fields(rest.subarray(nameLen), { size: size === U32_MAX, csize: csize === U32_MAX, offset: false }, fail);
        size = z.size ?? size;
        csize = z.csize ?? csize;
      }
      if (crc !== e.crc32 || csize !== e.compressedSize || size !== e.size) {
        fail(`local header (crc ${crc.toString(16)}, ${csize}/${size} bytes) disagrees with the central directory (crc ${e.crc32.toString(16)}, ${e.compressedSize}/${e.size} bytes)`);
      }
    }
    return start;
  }

  /** The whole entry, inflated if need be, CRC-checked. */
  async read(entry: ZipEntry | string): Promise<Uint8Array> {
    const e = this.info(entry);
    const start = await this.dataOffset(e);
    let out: Uint8Array;
    if (e.method === 'stored') out = await this.source.read(start, e.size);
    else out = await this.inflate(e, start);
    if (crc32(out) !== e.crc32) throw new FormatError(this.name, `zip: entry '${e.name}': CRC mismatch (corrupt data)`);
    return out;
  }

  /**
   * `length` bytes at `offset` inside the uncompressed entry. Stored entries
   * (all that torch writes) are read straight from the file, so a tensor in a
   * 10 GB checkpoint costs only its own bytes. The CRC is not checked here: it
   * covers the whole entry.
   */
  async readRange(entry: ZipEntry | string, offset: number, length: number): Promise<Uint8Array> {
    const e = this.info(entry);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > e.size) {
      throw new FormatError(this.name, `zip: entry '${e.name}': read of ${length} bytes at ${offset} is outside its ${e.size} bytes`);
    }
    const start = await this.dataOffset(e);
    if (e.method === 'stored') return this.source.read(start + offset, length);
    return (await this.read(e)).subarray(offset, offset + length);
  }

  private async inflate(e: EntryInfo, start: number): Promise<Uint8Array> {
    const fail = (d: string): never => {
      throw new FormatError(this.name, `zip: entry '${e.name}': ${d}`);
    };
    if (e.size > this.limits.maxInflatedBytes) fail(`inflates to ${e.size} bytes, over the limit of ${this.limits.maxInflatedBytes}`);
    const packed = await this.source.read(start, e.compressedSize);
    const out = new Uint8Array(e.size);
    let at = 0;
    let done = false;
    // The stream stops as soon as the output passes the declared size, so a
    // lying header cannot make us inflate more than it admitted to.
    const inflater = new Inflate((chunk, final) => {
      if (at + chunk.length > e.size) fail(`inflates past its declared size of ${e.size} bytes`);
      out.set(chunk, at);
      at += chunk.length;
      if (final) done = true;
    });
    try {
      for (let p = 0; p < packed.length || p === 0; p += INFLATE_CHUNK) {
        const end = Math.min(p + INFLATE_CHUNK, packed.length);
        inflater.push(packed.subarray(p, end), end === packed.length);
        if (end === packed.length) break;
      }
    } catch (err) {
      if (err instanceof FormatError) throw err;
      fail(`corrupt deflate data: ${(err as Error).message}`);
    }
    if (!done || at !== e.size) fail(`inflates to ${at} bytes, its header says ${e.size}`);
    return out;
  }

  close(): Promise<void> {
    return this.source.close();
  }
}
