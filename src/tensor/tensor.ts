// GPU tensors: a shape, a dtype and a reference-counted storage of one or more
// GPU buffers. Compute is f32; f16 is a storage format (two halves per u32
// word, unpacked in shaders with unpack2x16float, so no shader-f16 needed).
import type { BufferRange, Gpu } from '../gpu/gpu.ts';
import { DeviceLimitError, ShapeError } from '../errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from './half.ts';
import { track } from './scope.ts';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export type HostArray = Float32Array | Int32Array | Uint32Array;

export function bytesPerElement(dtype: DType): number {
  return dtype === 'f16' ? 2 : 4;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Bytes a dtype needs for n elements, rounded up to whole u32 words. */
export function storageBytes(dtype: DType, n: number): number {
  return Math.ceil((n * bytesPerElement(dtype)) / 4) * 4;
}

/** A contiguous byte range of one buffer, holding whole dim-0 rows. */
interface Part {
  buffer: GPUBuffer;
  byteStart: number;
  byteLength: number;
}

class Storage {
  private refs = 1;
  constructor(
    readonly gpu: Gpu,
    readonly parts: Part[],
  ) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) for (const p of this.parts) this.gpu.pool.release(p.buffer);
  }
}

export interface TensorOptions {
  /** Exact-size allocation outside the size classes (long-lived weights). */
  persistent?: boolean;
}

export class Tensor {
  private disposed = false;

  private constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly dtype: DType,
    private readonly storage: Storage,
    /** Byte offset of this view inside its (single-part) storage. */
    private readonly byteOffset = 0,
  ) {
    track(this);
  }

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return storageBytes(this.dtype, this.size);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Number of buffers holding the tensor (more than one past the binding limit). */
  get partCount(): number {
    return this.storage.parts.length;
  }

  /**
   * An uninitialised tensor. Tensors larger than the adapter's storage-binding
   * limit are split along dim 0 into several buffers (see parts()).
   */
  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32', options: TensorOptions = {}): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError('Tensor.empty', `bad shape ${shapeString(shape)}`);
    }
    const total = storageBytes(dtype, numel(shape));
    const max = gpu.maxBinding;
    const parts: Part[] = [];
    if (total <= max) {
      parts.push({ buffer: gpu.pool.acquire(Math.max(total, 4), options.persistent), byteStart: 0, byteLength: total });
    } else {
      const rowBytes = (numel(shape) / shape[0]) * bytesPerElement(dtype);
      if (rowBytes % 4 !== 0 || rowBytes > max) {
        throw new DeviceLimitError('maxStorageBufferBindingSize', rowBytes, max, `tensor ${shapeString(shape)} ${dtype}: one dim-0 row`);
      }
      const rowsPerPart = Math.floor(max / rowBytes);
      for (let r = 0; r < shape[0]; r += rowsPerPart) {
        const rows = Math.min(rowsPerPart, shape[0] - r);
        parts.push({ buffer: gpu.pool.acquire(rows * rowBytes, options.persistent), byteStart: r * rowBytes, byteLength: rows * rowBytes });
      }
    }
    return new Tensor(gpu, [...shape], dtype, new Storage(gpu, parts));
  }

  /** Uploads host data. f32 data becomes f16 storage when dtype is 'f16'. */
  static from(gpu: Gpu, data: HostArray | readonly number[], shape: readonly number[], dtype: DType = 'f32', options: TensorOptions = {}): Tensor {
    const n = numel(shape);
    if (data.length !== n) throw new ShapeError('Tensor.from', `${data.length} values for shape ${shapeString(shape)}`);
    const t = Tensor.empty(gpu, shape, dtype, options);
    t.write(hostBytes(data, dtype));
    return t;
  }

  /** Uploads raw little-endian bytes already in this dtype's layout (f16 as half bits). */
  static fromBytes(gpu: Gpu, bytes: Uint8Array, shape: readonly number[], dtype: DType, options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(gpu, shape, dtype, options);
    if (bytes.byteLength !== numel(shape) * bytesPerElement(dtype)) {
      t.dispose();
      throw new ShapeError('Tensor.fromBytes', `${bytes.byteLength} bytes for ${dtype} ${shapeString(shape)}`);
    }
    t.write(bytes);
    return t;
  }

  /** Writes raw bytes (the whole tensor) into its storage. */
  write(bytes: Uint8Array): void {
    this.assertLive();
    for (const r of this.ranges()) this.gpu.write(r.buffer, r.offset, bytes.subarray(r.hostStart, r.hostStart + r.length));
  }

  /** Where each piece of this tensor's bytes lives. */
  private ranges(): { buffer: GPUBuffer; offset: number; length: number; hostStart: number }[] {
    const parts = this.storage.parts;
    if (parts.length === 1) return [{ buffer: parts[0].buffer, offset: this.byteOffset, length: this.byteLength, hostStart: 0 }];
    return parts.map((p) => ({ buffer: p.buffer, offset: 0, length: p.byteLength, hostStart: p.byteStart }));
  }

  /** The buffer range to bind. Multi-part tensors must be bound part by part. */
  binding(): BufferRange {
    this.assertLive();
    if (this.storage.parts.length !== 1) {
      throw new DeviceLimitError(
        'maxStorageBufferBindingSize',
        this.byteLength,
        this.gpu.maxBinding,
        `tensor ${shapeString(this.shape)} ${this.dtype} bound whole (use parts())`,
      );
    }
    const p = this.storage.parts[0];
    const align = this.gpu.device.limits.minStorageBufferOffsetAlignment;
    if (this.byteOffset % align !== 0) throw new Error(`tensor view at byte ${this.byteOffset} is not ${align}-byte aligned for binding`);
    return { buffer: p.buffer, offset: this.byteOffset, size: Math.max(this.byteLength, 4) };
  }

  /** Views of each buffer of the storage, each [rows_i, ...shape.slice(1)]. */
  parts(): Tensor[] {
    this.assertLive();
    if (this.storage.parts.length === 1) return [this.view(this.shape)];
    const rowBytes = (this.size / this.shape[0]) * bytesPerElement(this.dtype);
    return this.storage.parts.map((p) => {
      const single = new Storage(this.gpu, [{ buffer: p.buffer, byteStart: 0, byteLength: p.byteLength }]);
      this.storage.retain();
      // The part view releases the parent storage, not the single buffer.
      (single as unknown as { release: () => void }).release = () => this.storage.release();
      return new Tensor(this.gpu, [p.byteLength / rowBytes, ...this.shape.slice(1)], this.dtype, single);
    });
  }

  /** A view with another shape of the same element count (no copy). */
  reshape(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.size);
    if (this.storage.parts.length > 1 && resolved[0] !== this.shape[0]) {
      const rowElems = numel(resolved.slice(1));
      const oldRow = this.size / this.shape[0];
      if (oldRow % rowElems !== 0) throw new ShapeError('reshape', `multi-buffer tensor ${shapeString(this.shape)} cannot become ${shapeString(resolved)}`);
    }
    return this.view(resolved);
  }

  private view(shape: readonly number[]): Tensor {
    this.assertLive();
    return new Tensor(this.gpu, shape, this.dtype, this.storage.retain(), this.byteOffset);
  }

  /** Rows [start, start+length) of dim 0, as a view (single-buffer tensors). */
  narrow(start: number, length: number): Tensor {
    this.assertLive();
    if (start < 0 || length < 0 || start + length > this.shape[0]) throw new ShapeError('narrow', `rows ${start}+${length} of ${shapeString(this.shape)}`);
    if (this.storage.parts.length !== 1) throw new ShapeError('narrow', 'multi-buffer tensors narrow through parts()');
    const rowBytes = (this.size / this.shape[0]) * bytesPerElement(this.dtype);
    return new Tensor(this.gpu, [length, ...this.shape.slice(1)], this.dtype, this.storage.retain(), this.byteOffset + start * rowBytes);
  }

  /** Reads the tensor back: f32 and f16 as Float32Array, i32 as Int32Array, u32 as Uint32Array. */
  async read(): Promise<HostArray> {
    this.assertLive();
    const n = this.size;
    const chunks: ArrayBuffer[] = [];
    for (const r of this.ranges()) chunks.push(await this.gpu.read(r.buffer, r.offset, r.length));
    const bytes = concatBytes(chunks, n * bytesPerElement(this.dtype));
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(bytes.buffer, 0, n);
      case 'f16':
        return f16ArrayToF32(new Uint16Array(bytes.buffer, 0, n));
      case 'i32':
        return new Int32Array(bytes.buffer, 0, n);
      case 'u32':
        return new Uint32Array(bytes.buffer, 0, n);
    }
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }

  private assertLive(): void {
    if (this.disposed) throw new Error(`tensor ${shapeString(this.shape)} ${this.dtype} used after dispose()`);
  }
}

function concatBytes(chunks: ArrayBuffer[], bytes: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes / 4) * 4);
  let at = 0;
  for (const c of chunks) {
    out.set(new Uint8Array(c, 0, Math.min(c.byteLength, out.length - at)), at);
    at += c.byteLength;
  }
  return out;
}

function resolveShape(shape: readonly number[], size: number): number[] {
  const out = [...shape];
  const infer = out.indexOf(-1);
  if (infer >= 0) {
    const rest = numel(out.filter((_, i) => i !== infer));
    out[infer] = rest === 0 ? 0 : size / rest;
  }
  if (!out.every((d) => Number.isInteger(d) && d >= 0) || numel(out) !== size) {
    throw new ShapeError('reshape', `cannot view ${size} elements as ${shapeString(shape)}`);
  }
  return out;
}

function hostBytes(data: HostArray | readonly number[], dtype: DType): Uint8Array {
  let typed: ArrayBufferView;
  if (dtype === 'f16') typed = f32ArrayToF16(data instanceof Float32Array ? data : Float32Array.from(data));
  else if (dtype === 'f32') typed = data instanceof Float32Array ? data : Float32Array.from(data);
  else if (dtype === 'i32') typed = data instanceof Int32Array ? data : Int32Array.from(data);
  else typed = data instanceof Uint32Array ? data : Uint32Array.from(data);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}
