// JSON files we are handed (tokenizer.json, config.json, case.json): read
// with a size limit, so that a huge or endless file is refused before it is
// held in memory, and parsed into a FormatError that names the file.
import { FormatError } from '../errors.ts';
import { type Folder, folderPath, localFolder, readText } from './folder.ts';

/** A model config.json is a few kB; this leaves ample room. */
export const MAX_CONFIG_JSON_BYTES = 1 << 20;
/**
 * Bounds on what a model config may ask for. Sizes go into u32 uniforms and
 * f32 index arithmetic (exact up to 2^24); levels and blocks per level are
 * walked when a model is validated and built (upstream uses 4 and 2-3). No
 * real model comes near them.
 */
export const CONFIG_LIMITS = { size: 1 << 24, levels: 16, blocksPerLevel: 1024 } as const;

/** Parses `text` from `file`, refusing texts over `maxBytes` (UTF-16 units, close enough for a limit). */
export function parseJsonText(text: string, file: string, maxBytes: number): unknown {
  if (text.length > maxBytes) throw new FormatError(file, `is ${text.length} bytes, over the limit of ${maxBytes} for this file`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads a JSON file's text, checking its size before reading it: a local path,
 * or a path inside a folder (picked files, a URL). A missing file is null
 * when `optional`, an error otherwise.
 */
export async function readJsonText(path: string, maxBytes: number, optional = false, folder: Folder = localFolder('')): Promise<string | null> {
  const name = folderPath(folder, path);
  let source;
  try {
    source = await folder.open(path);
  } catch (e) {
    throw e instanceof FormatError ? e : new FormatError(name, `cannot read: ${(e as Error).message}`);
  }
  if (!source) {
    if (optional) return null;
    throw new FormatError(name, 'cannot read: no such file');
  }
  return readText(source, maxBytes);
}

/** Reads and parses a JSON file (a local path, or a path inside `folder`). */
export async function readJsonFile(path: string, maxBytes: number, folder?: Folder): Promise<unknown> {
  return parseJsonText((await readJsonText(path, maxBytes, false, folder))!, folder ? folderPath(folder, path) : path, maxBytes);
}
