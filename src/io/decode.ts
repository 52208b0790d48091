// Host-side decoding of stored tensor bytes into the dtypes the GPU tensors use.
import { FormatError } from '../errors.ts';
import { bf16ArrayToF32, f16ArrayToF32 } from '../tensor/half.ts';
import type { StoredDType } from './checkpoint.ts';

function aligned<T>(bytes: Uint8Array, ctor: { new (b: ArrayBuffer, o: number, n: number): T; BYTES_PER_ELEMENT: number }): T {
  const n = bytes.byteLength / ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  return new ctor(bytes.slice().buffer, 0, n);
}

export function isFloat(dtype: StoredDType): boolean {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

/** Any float dtype → Float32Array (f64 rounds, f16/bf16 widen exactly). */
export function decodeF32(bytes: Uint8Array, dtype: StoredDType, what: string): Float32Array {
  switch (dtype) {
    case 'F32':
      return aligned(bytes, Float32Array);
    case 'F16':
      return f16ArrayToF32(aligned(bytes, Uint16Array));
    case 'BF16':
      return bf16ArrayToF32(aligned(bytes, Uint16Array));
    case 'F64':
      return Float32Array.from(aligned(bytes, Float64Array));
    default:
      throw new FormatError(what, `expected a float tensor, got ${dtype}`);
  }
}

/** Integer or bool dtypes → Int32Array; i64 values must fit in i32. */
export function decodeI32(bytes: Uint8Array, dtype: StoredDType, what: string): Int32Array {
  switch (dtype) {
    case 'I32':
      return aligned(bytes, Int32Array);
    case 'I64': {
      const src = aligned(bytes, BigInt64Array);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n) throw new FormatError(what, `int64 value ${v} at index ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'I16':
      return Int32Array.from(aligned(bytes, Int16Array));
    case 'I8':
      return Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(bytes);
    default:
      throw new FormatError(what, `expected an integer or bool tensor, got ${dtype}`);
  }
}
