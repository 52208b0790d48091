// Op fixtures written by test/reference/ops_<family>.py: one safetensors file
// per kernel family, tensors named '<case>.<arg>' (the result is '<case>.out'),
// each case's scalar parameters as JSON in the metadata under its name.
import { openSafetensorsFile } from '../src/io/safetensors.ts';
import { decodeF32, decodeI32, isFloat } from '../src/io/decode.ts';

export interface FixtureTensor {
  shape: number[];
  /** Float tensors as f32; integer and bool tensors as i32. */
  data: Float32Array | Int32Array;
}

export interface OpCase {
  name: string;
  params: Record<string, unknown>;
  tensors: Record<string, FixtureTensor>;
}

export function fixturePath(rel: string): string {
  return new URL(`./fixtures/${rel}`, import.meta.url).pathname;
}

export async function loadOpCases(family: string): Promise<OpCase[]> {
  const ckpt = await openSafetensorsFile(fixturePath(`ops/${family}.safetensors`));
  const cases = new Map<string, OpCase>();
  for (const [name, json] of Object.entries(ckpt.metadata)) cases.set(name, { name, params: JSON.parse(json), tensors: {} });
  for (const key of ckpt.keys()) {
    const dot = key.indexOf('.');
    const caseName = key.slice(0, dot);
    const c = cases.get(caseName) ?? { name: caseName, params: {}, tensors: {} };
    cases.set(caseName, c);
    const e = ckpt.get(key)!;
    const bytes = await e.read();
    c.tensors[key.slice(dot + 1)] = {
      shape: [...e.shape],
      data: isFloat(e.dtype) ? decodeF32(bytes, e.dtype, key) : decodeI32(bytes, e.dtype, key),
    };
  }
  await ckpt.close();
  return [...cases.values()];
}
