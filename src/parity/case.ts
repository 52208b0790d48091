// Parity cases (../shared/design/parity-cases.md): a folder pinning one module
// call to a PyTorch result.
import { FormatError } from '../errors.ts';
import type { Checkpoint, StoredDType } from '../io/checkpoint.ts';
import { parseJsonText } from '../io/jsonFile.ts';
import { decodeF32, decodeI32, isFloat } from '../io/decode.ts';
import { type Folder, type FolderLike, asFolder, openRequired, readText } from '../io/folder.ts';
import { openSafetensors } from '../io/safetensors.ts';

export interface HostTensor {
  dtype: StoredDType;
  shape: number[];
  /** Floats as f32, integers and bools as i32. */
  data: Float32Array | Int32Array;
}

export interface CaseSpec {
  name: string;
  module: string;
  config: Record<string, unknown>;
  method: string;
  args: Record<string, unknown>;
  atol: number;
  rtol: number;
  source?: string;
}

const MAX_CASE_JSON_BYTES = 1 << 20;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function parseCaseJson(text: string, file: string): CaseSpec {
  const raw = parseJsonText(text, file, MAX_CASE_JSON_BYTES);
  if (!isObject(raw)) throw new FormatError(file, 'case.json must hold a JSON object');
  const str = (k: string, required: boolean) => {
    const v = raw[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || !v) throw new FormatError(file, `"${k}" must be a non-empty string`);
    return v;
  };
  const num = (k: string) => {
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new FormatError(file, `"${k}" must be a non-negative number`);
    return v;
  };
  const obj = (k: string) => {
    const v = raw[k] ?? {};
    if (!isObject(v)) throw new FormatError(file, `"${k}" must be an object`);
    return v;
  };
  return {
    name: str('name', true)!,
    module: str('module', true)!,
    config: obj('config'),
    method: str('method', true)!,
    args: obj('args'),
    atol: num('atol'),
    rtol: num('rtol'),
    source: str('source', false),
  };
}

export async function readHostTensors(ckpt: Checkpoint): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const key of ckpt.keys()) {
    const e = ckpt.get(key)!;
    const bytes = await e.read();
    const what = `${ckpt.source}: '${key}'`;
    out.set(key, { dtype: e.dtype, shape: [...e.shape], data: isFloat(e.dtype) ? decodeF32(bytes, e.dtype, what) : decodeI32(bytes, e.dtype, what) });
  }
  return out;
}

export interface LoadedCase {
  /** The case folder's path or URL, for messages. */
  dir: string;
  spec: CaseSpec;
  weights: Checkpoint;
  inputs: Map<string, HostTensor>;
  outputs: Map<string, HostTensor>;
  close(): Promise<void>;
}

async function openCaseFile(folder: Folder, file: string): Promise<Checkpoint> {
  const source = await openRequired(folder, file);
  try {
    return await openSafetensors(source);
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** A case folder: a local path, or a folder of picked files or URLs. */
export async function loadCase(dir: FolderLike): Promise<LoadedCase> {
  const folder = asFolder(dir);
  const caseFile = await openRequired(folder, 'case.json');
  const spec = parseCaseJson(await readText(caseFile, MAX_CASE_JSON_BYTES), caseFile.name);
  const weights = await openCaseFile(folder, 'weights.safetensors');
  const inputsCk = await openCaseFile(folder, 'inputs.safetensors');
  const outputsCk = await openCaseFile(folder, 'outputs.safetensors');
  const inputs = await readHostTensors(inputsCk);
  const outputs = await readHostTensors(outputsCk);
  await inputsCk.close();
  await outputsCk.close();
  return { dir: folder.name, spec, weights, inputs, outputs, close: () => weights.close() };
}
