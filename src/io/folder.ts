// A read-only folder of files named by '/'-separated relative paths, wherever
// the files are: a local directory (Node, Deno), the files a browser user
// picked (File objects, read by Blob slices), or a base URL (read by HTTP
// Range requests). Weights, tokenizers, configs and parity cases are all read
// through one, so the same loading code runs in every runtime.
import { FormatError } from '../errors.ts';
import { pathKind } from '../platform.ts';
import { type ByteSource, blobSource, fileSource, urlSource } from './byteSource.ts';

export interface Folder {
  /** The folder's path or URL, used in every error message. */
  readonly name: string;
  /** The file at `path` opened for random access, or undefined when there is none. */
  open(path: string): Promise<ByteSource | undefined>;
}

/** A local folder path (Node, Deno) or a folder object. */
export type FolderLike = string | Folder;

function joinPath(dir: string, path: string): string {
  return dir === '' ? path : `${dir.replace(/\/+$/, '')}/${path}`;
}

/** How a file in a folder is named in messages. */
export function folderPath(folder: Folder, path: string): string {
  return joinPath(folder.name, path);
}

/** A local directory (Node or Deno); '' is the working directory. */
export function localFolder(dir: string): Folder {
  return {
    name: dir,
    async open(path) {
      const full = joinPath(dir, path);
      return (await pathKind(full)) === 'file' ? fileSource(full) : undefined;
    },
  };
}

export function asFolder(folder: FolderLike): Folder {
  return typeof folder === 'string' ? localFolder(folder) : folder;
}

/** Where a picked file sits: its path under the picked folder, else its name. */
function pickedPath(f: File): string {
  return f.webkitRelativePath ? f.webkitRelativePath.split('/').slice(1).join('/') : f.name;
}

/**
 * Files a browser user picked: with a folder picker each File carries its
 * `webkitRelativePath` ("picked/flan-ul2/config.json"), whose first component
 * (the picked folder itself) is dropped; plain picks are named by file name,
 * or placed by `pathOf`.
 */
export function fileListFolder(files: Iterable<File>, name = 'picked files', pathOf: (f: File) => string = pickedPath): Folder {
  const byPath = new Map<string, File>();
  for (const f of files) byPath.set(pathOf(f), f);
  return {
    name,
    async open(path) {
      const f = byPath.get(path);
      return f && blobSource(f, `${name}/${path}`);
    },
  };
}

/** Files under a base URL, read by Range requests (the server must support them). */
export function urlFolder(base: string | URL): Folder {
  const root = new URL(base);
  if (!root.pathname.endsWith('/')) root.pathname += '/';
  return {
    name: root.href,
    open: (path) => urlSource(new URL(path, root)),
  };
}

/** The folder at `path` inside `folder`. */
export function subfolder(folder: Folder, path: string): Folder {
  return { name: joinPath(folder.name, path), open: (p) => folder.open(joinPath(path, p)) };
}

/** The file at `path`, or a FormatError naming it. */
export async function openRequired(folder: Folder, path: string, what = 'file'): Promise<ByteSource> {
  const source = await folder.open(path);
  if (!source) throw new FormatError(folderPath(folder, path), `cannot open: no such ${what}`);
  return source;
}

/** Whether `path` names a file in `folder`. */
export async function hasFile(folder: Folder, path: string): Promise<boolean> {
  const source = await folder.open(path);
  await source?.close();
  return source !== undefined;
}

/** A whole small file (configs, tokenizers, case descriptions) as bytes. */
export async function readAll(source: ByteSource, maxBytes: number): Promise<Uint8Array> {
  try {
    if (source.size > maxBytes) throw new FormatError(source.name, `is ${source.size} bytes, over the limit of ${maxBytes} for this file`);
    return await source.read(0, source.size);
  } finally {
    await source.close();
  }
}

/** A whole small file as UTF-8 text. */
export async function readText(source: ByteSource, maxBytes: number): Promise<string> {
  const bytes = await readAll(source, maxBytes);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(source.name, 'is not valid UTF-8 text');
  }
}
