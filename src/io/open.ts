// Opens any checkpoint the project reads, chosen by content rather than by
// file extension (.pt, .pth, .bin and .ckpt are all used for torch zips):
//   'PK'                         → PyTorch zip (torch.save, torch >= 1.6)
//   a bare pickle or tar         → legacy torch format, refused with a hint
//   8-byte length then '{'       → safetensors
//   *.index.json                 → sharded checkpoint {"weight_map": {tensor: shard file}}
import { FormatError } from '../errors.ts';
import type { ByteSource } from './byteSource.ts';
import type { Checkpoint, TensorEntry } from './checkpoint.ts';
import { type Folder, localFolder, openRequired, readText } from './folder.ts';
import { isLegacyTorch, openPt } from './pt.ts';
import { openSafetensors } from './safetensors.ts';

/** Index files larger than this are refused (real ones are well under 1 MB). */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export type CheckpointFormat = 'pt' | 'legacy-pt' | 'safetensors';

/** The format of the first bytes of a file, or undefined if it is none we read. */
export function sniffFormat(head: Uint8Array): CheckpointFormat | undefined {
  if (head.length >= 2 && head[0] === 0x50 && head[1] === 0x4b) return 'pt';
  if (isLegacyTorch(head)) return 'legacy-pt';
  if (head.length >= 9 && head[8] === 0x7b) return 'safetensors';
  return undefined;
}

export async function openCheckpoint(source: ByteSource): Promise<Checkpoint> {
  const head = await source.read(0, Math.min(source.size, 512));
  const format = sniffFormat(head);
  // openPt gives the legacy format its own message.
  if (format === 'pt' || format === 'legacy-pt') return openPt(source);
  if (format === 'safetensors') return openSafetensors(source);
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new FormatError(
    source.name,
    `not a checkpoint this project reads: expected a PyTorch zip (.pt/.pth/.bin, starting 'PK') or a safetensors file (8-byte header length, then '{'); the file starts ${hex || '(empty)'}`,
  );
}

/** A local checkpoint file by content, or a sharded checkpoint through its `*.index.json` (or a variant's `*.index.fp16.json`). */
export async function openCheckpointFile(path: string): Promise<Checkpoint> {
  const cut = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  const dir = cut < 0 ? '' : path.slice(0, cut) || '/';
  return openCheckpointIn(localFolder(dir), path.slice(cut + 1));
}

/** The checkpoint at `path` in `folder`: by content, or sharded through its index. */
export async function openCheckpointIn(folder: Folder, path: string): Promise<Checkpoint> {
  return /\.index(\.[\w-]+)?\.json$/.test(path) ? openShardedIndex(folder, path) : openByContent(await openRequired(folder, path));
}

function unsafeShardPath(p: string): string | undefined {
  if (p.length === 0) return 'is empty';
  if (p.includes('\0') || p.includes('\\')) return 'contains a NUL or a backslash';
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'is absolute';
  if (p.split('/').some((s) => s === '..' || s === '.' || s === '')) return "has an empty, '.' or '..' component";
  return undefined;
}

/**
 * A sharded checkpoint (Hugging Face layout): `{"metadata": {...},
 * "weight_map": {tensor: shard}}`, shard paths relative to the index. Each
 * shard may be safetensors or a torch zip. Each shard's header is read when the
 * index is opened (TensorEntry's dtype and shape are synchronous) and its file
 * is then closed again; it is reopened when one of its tensors is read. Keys
 * follow the weight_map's order; tensors in a shard that the weight_map does
 * not list are ignored.
 */
export async function openShardedIndex(folder: Folder, indexPath: string): Promise<Checkpoint> {
  const index = await openRequired(folder, indexPath);
  const path = index.name;
  const text = await readText(index, MAX_INDEX_BYTES);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `index is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(parsed) || !isObject(parsed.weight_map)) throw new FormatError(path, 'index has no "weight_map" object');
  const weightMap = parsed.weight_map;
  const dir = indexPath.slice(0, indexPath.lastIndexOf('/') + 1);
  const shardNames: string[] = [];
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') throw new FormatError(path, `weight_map['${tensor}'] is not a file name`);
    const bad = unsafeShardPath(shard);
    if (bad) throw new FormatError(path, `weight_map['${tensor}'] = '${shard}' ${bad}`);
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }

  const shards = new Map<string, Checkpoint>();
  const closeAll = () => Promise.all([...shards.values()].map((c) => c.close()));
  try {
    for (const shard of shardNames) {
      // Read the shard's header, then let go of its file handle until a
      // tensor of that shard is read: a 100-shard model holds no 100 handles.
      const source = await reopeningSource(folder, dir + shard);
      try {
        shards.set(shard, await openCheckpoint(source));
      } catch (e) {
        await source.close();
        throw e;
      }
      await source.release();
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  // Built as a Map: a key such as '__proto__' must stay a plain entry.
  const meta = new Map<string, string>();
  for (const c of shards.values()) for (const [k, v] of Object.entries(c.metadata)) meta.set(k, v);
  if (isObject(parsed.metadata)) {
    for (const [k, v] of Object.entries(parsed.metadata)) meta.set(k, typeof v === 'string' ? v : JSON.stringify(v));
  }
  const metadata: Record<string, string> = Object.fromEntries(meta);
  const entries = new Map<string, TensorEntry>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    const e = shards.get(shard as string)!.get(tensor);
    if (!e) {
      await closeAll();
      throw new FormatError(path, `weight_map puts '${tensor}' in ${shard as string}, which has no such tensor`);
    }
    entries.set(tensor, e);
  }
  const keys = [...entries.keys()];
  return {
    source: path,
    metadata,
    keys: () => keys,
    get: (k) => entries.get(k),
    close: async () => {
      await closeAll();
    },
  };
}

/** A source whose file can be let go of and is reopened on the next read. */
async function reopeningSource(folder: Folder, path: string): Promise<ByteSource & { release(): Promise<void> }> {
  const first = await openRequired(folder, path);
  const { name, size } = first;
  let current: Promise<ByteSource> | undefined = Promise.resolve(first);
  const reopen = async (): Promise<ByteSource> => {
    const s = await openRequired(folder, path);
    if (s.size !== size) {
      await s.close();
      throw new FormatError(name, `changed size from ${size} to ${s.size} bytes since it was opened`);
    }
    return s;
  };
  const open = (): Promise<ByteSource> => {
    if (!current) {
      const p = reopen();
      current = p;
      // A failed open is not cached: the next read tries again.
      p.catch(() => {
        if (current === p) current = undefined;
      });
    }
    return current;
  };
  const release = async () => {
    const p = current;
    current = undefined;
    if (p) await p.then((s) => s.close(), () => {});
  };
  return { name, size, read: async (offset, length) => (await open()).read(offset, length), close: release, release };
}

async function openByContent(source: ByteSource): Promise<Checkpoint> {
  try {
    return await openCheckpoint(source);
  } catch (e) {
    await source.close();
    throw e;
  }
}
