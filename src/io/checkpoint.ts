// The common view of a checkpoint file, whatever its format: named tensors
// with dtype and shape, each read on demand.

/** Tensor dtypes as checkpoints store them (safetensors names). */
export type StoredDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const STORED_DTYPE_BYTES: Readonly<Record<StoredDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** Bytes of the contiguous little-endian data. */
  readonly byteLength: number;
  /** The tensor's bytes, contiguous, row-major, little-endian. */
  read(): Promise<Uint8Array>;
}

export interface Checkpoint {
  /** The file (or folder) it came from, for error messages. */
  readonly source: string;
  /** Tensor names in file order. Nested dicts are flattened with '.'. */
  keys(): string[];
  get(name: string): TensorEntry | undefined;
  /** Non-tensor entries (e.g. safetensors metadata). */
  readonly metadata: Readonly<Record<string, string>>;
  close(): Promise<void>;
}
