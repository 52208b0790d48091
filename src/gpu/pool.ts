// Recycles GPU buffers by size class so that a diffusion loop allocates
// nothing after its first step. Classes are 4 per power of two (at most 25%
// slack); buffers are returned explicitly, never by garbage collection.

// GPUBufferUsage STORAGE | COPY_SRC | COPY_DST, as numbers: in Node the WebGPU
// globals exist only once a device has been opened.
export const STORAGE_USAGE = 0x80 | 0x04 | 0x08;

export interface PoolStats {
  /** Bytes in buffers handed out and not yet released. */
  liveBytes: number;
  peakLiveBytes: number;
  /** Bytes held by the pool's free lists. */
  freeBytes: number;
  /** Peak of live + free bytes: what the device actually held. */
  peakDeviceBytes: number;
  /** createBuffer calls made so far. */
  allocations: number;
}

const MIN_CLASS = 256;

/** The smallest size class that holds `bytes`. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_CLASS) return MIN_CLASS;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private live = 0;
  private peak = 0;
  private held = 0;
  private allocs = 0;
  private peakDevice = 0;
  /** Released exact-size buffers, destroyed once the commands recorded so far are submitted. */
  private retired: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** A buffer of at least `bytes` (exactly `bytes` rounded to 4 when `exact`). */
  acquire(bytes: number, exact = false): GPUBuffer {
    const size = exact ? Math.max(4, Math.ceil(bytes / 4) * 4) : sizeClass(bytes);
    const list = exact ? undefined : this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.held -= size;
    } else {
      buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE });
      this.allocs++;
      this.sizes.set(buffer, exact ? -size : size);
    }
    this.live += size;
    this.peak = Math.max(this.peak, this.live);
    this.peakDevice = Math.max(this.peakDevice, this.live + this.held);
    return buffer;
  }

  /**
   * Returns a buffer. Exact-size buffers (weights) are destroyed at the next
   * submit (destroyRetired): a dispatch recorded but not yet submitted may
   * read them (e.g. a conv kernel packed from its loaded form).
   */
  release(buffer: GPUBuffer): void {
    const tagged = this.sizes.get(buffer);
    if (tagged === undefined) throw new Error('BufferPool.release: buffer does not belong to this pool');
    const size = Math.abs(tagged);
    this.live -= size;
    if (tagged < 0) {
      this.retired.push(buffer);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
    this.held += size;
  }

  /** Destroys released exact-size buffers; called once recorded commands are submitted. */
  destroyRetired(): void {
    for (const b of this.retired) b.destroy();
    this.retired = [];
  }

  /** Destroys every free buffer (e.g. between pipeline stages). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.held = 0;
  }

  resetPeak(): void {
    this.peak = this.live;
    this.peakDevice = this.live + this.held;
  }

  stats(): PoolStats {
    return { liveBytes: this.live, peakLiveBytes: this.peak, freeBytes: this.held, peakDeviceBytes: this.peakDevice, allocations: this.allocs };
  }
}
