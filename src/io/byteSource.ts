// Random-access byte sources, so that multi-gigabyte checkpoints are read
// tensor by tensor and never whole: Node and Deno files, browser Blobs/Files,
// URLs read by HTTP Range requests, and in-memory buffers.
import { FormatError } from '../errors.ts';

export interface ByteSource {
  /** File name or URL, used in every error message. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`, or a FormatError naming the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new FormatError(name, `read of ${length} bytes at offset ${offset} is outside the file (${size} bytes)`);
  }
}

export function bytesSource(bytes: Uint8Array, name = '<memory>'): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(name, bytes.byteLength, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}

export function blobSource(blob: Blob, name = (blob as File).name ?? '<blob>'): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange(name, blob.size, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    async close() {},
  };
}

// The total size in a Content-Range header: "bytes a-b/SIZE", or "bytes */SIZE".
function rangeTotal(header: string | null): number | undefined {
  const m = /\/(\d+)\s*$/.exec(header ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * A file behind a URL, read by HTTP Range requests; the server must answer
 * them with 206 (a server that sends the whole file instead is refused rather
 * than downloaded whole). Resolves to undefined when the server says 404.
 */
export async function urlSource(url: string | URL, name = String(url)): Promise<ByteSource | undefined> {
  const probe = await fetch(url, { headers: { Range: 'bytes=0-0' } }).catch((e: Error) => {
    throw new FormatError(name, `cannot fetch: ${e.message}`);
  });
  await probe.body?.cancel();
  if (probe.status === 404) return undefined;
  // 416: an empty file has no byte 0; its size is still in Content-Range.
  const size = probe.status === 206 || probe.status === 416 ? rangeTotal(probe.headers.get('Content-Range')) : undefined;
  if (size === undefined) {
    throw new FormatError(name, `the server answered a range request with HTTP ${probe.status} ${probe.statusText}; weights are read in slices, so it must support Range requests (206 with Content-Range)`);
  }
  return {
    name,
    size,
    async read(offset, length) {
      checkRange(name, size, offset, length);
      if (length === 0) return new Uint8Array(0);
      const res = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 206 || bytes.byteLength !== length) {
        throw new FormatError(name, `range ${offset}+${length}: HTTP ${res.status}, ${bytes.byteLength} bytes`);
      }
      return bytes;
    },
    async close() {},
  };
}

declare const Deno:
  | {
      open(path: string, o: { read: boolean }): Promise<{ seek(o: number, w: number): Promise<number>; read(b: Uint8Array): Promise<number | null>; close(): void }>;
      stat(path: string): Promise<{ size: number }>;
    }
  | undefined;

/** Opens a local file (Node or Deno). */
export async function fileSource(path: string): Promise<ByteSource> {
  if (typeof Deno !== 'undefined') {
    let f: Awaited<ReturnType<NonNullable<typeof Deno>['open']>>;
    try {
      f = await Deno.open(path, { read: true });
    } catch (e) {
      throw new FormatError(path, `cannot open: ${(e as Error).message}`);
    }
    const { size } = await Deno.stat(path);
    return {
      name: path,
      size,
      async read(offset, length) {
        checkRange(path, size, offset, length);
        const out = new Uint8Array(length);
        await f.seek(offset, 0);
        let at = 0;
        while (at < length) {
          const n = await f.read(out.subarray(at));
          if (n === null) throw new FormatError(path, `unexpected end of file at ${offset + at}`);
          at += n;
        }
        return out;
      },
      async close() {
        f.close();
      },
    };
  }
  const fs = await import('node:fs/promises');
  let handle;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    throw new FormatError(path, `cannot open: ${(e as Error).message}`);
  }
  const { size } = await handle.stat();
  const h = handle;
  return {
    name: path,
    size,
    async read(offset, length) {
      checkRange(path, size, offset, length);
      const out = new Uint8Array(length);
      let at = 0;
      while (at < length) {
        const { bytesRead } = await h.read(out, at, length - at, offset + at);
        if (bytesRead === 0) throw new FormatError(path, `unexpected end of file at ${offset + at}`);
        at += bytesRead;
      }
      return out;
    },
    async close() {
      await h.close();
    },
  };
}
