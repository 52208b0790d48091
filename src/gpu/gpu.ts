// The GPU context every tensor and op runs on: device, buffer pool, kernel
// and pipeline caches, and one command encoder that batches dispatches until
// a readback, an upload or a batch limit flushes it.
import { DeviceLimitError, GpuError, ShaderCompileError } from '../errors.ts';
import { type DeviceInfo, type OpenDeviceOptions, type OpenedDevice, openDevice } from './device.ts';
import type { OpProfile } from './profile.ts';
import { type BindingInfo, type EntryInfo, type KernelModule, kernelFiles, loadKernel } from './kernels.ts';
import { BufferPool } from './pool.ts';

export type OverrideValues = Readonly<Record<string, number | boolean>>;

export interface KernelCall {
  /** Kernel family: the file kernels/<kernel>.wgsl. */
  kernel: string;
  /** Entry point; defaults to `main`. */
  entry?: string;
  /** Override constants that specialise the pipeline. */
  overrides?: OverrideValues;
}

/** A storage binding: a buffer range. */
export interface BufferRange {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** A uniform binding: struct members by name. */
export type UniformValues = Readonly<Record<string, number | readonly number[]>>;

export type Binding = BufferRange | UniformValues;

interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  entry: EntryInfo;
  key: string;
}

const MAP_READ = 0x01;
const COPY_DST = 0x08;
const UNIFORM = 0x40;
const UNIFORM_ARENA_BYTES = 64 * 1024;
/** Dispatches per submit: early submits let the device start while JS encodes. */
const DISPATCHES_PER_FLUSH = 32;

function pipelineKey(call: KernelCall): string {
  const o = call.overrides ?? {};
  const parts = Object.keys(o)
    .sort()
    .map((k) => `${k}=${Number(o[k])}`);
  return [call.kernel, call.entry ?? 'main', ...parts].join('|');
}

export function isRange(b: Binding): b is BufferRange {
  return typeof b === 'object' && b !== null && 'buffer' in b && typeof (b as BufferRange).buffer === 'object';
}

/** Prefix of the errors the device raised as GPUOutOfMemoryError. */
const OUT_OF_MEMORY = 'out of GPU memory';

export class Gpu {
  readonly pool: BufferPool;
  /** Counts dispatches per kernel family while set; with dryRun, instead of running them. */
  profile: OpProfile | null = null;
  private readonly modules = new Map<string, KernelModule>();
  private readonly pipelines = new Map<string, Pipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  private readonly uniformArena = new ArrayBuffer(UNIFORM_ARENA_BYTES);
  private uniformUsed = 0;
  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformAlign: number;
  private readonly errors: string[] = [];
  private lost: string | null = null;
  /** Dispatches recorded since the context opened (for tests and benches). */
  dispatchCount = 0;

  private constructor(
    readonly device: GPUDevice,
    readonly info: DeviceInfo,
  ) {
    this.pool = new BufferPool(device);
    this.uniformAlign = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
    this.uniformBuffer = device.createBuffer({ size: UNIFORM_ARENA_BYTES, usage: UNIFORM | COPY_DST, label: 'uniform arena' });
    device.addEventListener('uncapturederror', (ev) => {
      const error = (ev as GPUUncapturedErrorEvent).error;
      this.errors.push(error.constructor.name === 'GPUOutOfMemoryError' ? `${OUT_OF_MEMORY}: ${error.message}` : error.message);
    });
    void device.lost.then((l) => {
      this.lost = `${l.reason}: ${l.message}`;
    });
  }

  /** Opens a device and loads (validates, reflects) every kernel file. */
  static async open(options: OpenDeviceOptions = {}): Promise<Gpu> {
    return Gpu.withKernels(await openDevice(options));
  }

  /** A device opened with openDevice (e.g. to check its limits first), with every kernel loaded. */
  static async withKernels({ device, info }: OpenedDevice): Promise<Gpu> {
    const gpu = new Gpu(device, info);
    const loaded = await Promise.all((await kernelFiles()).map((f) => loadKernel(device, f)));
    for (const m of loaded) gpu.modules.set(m.file, m);
    return gpu;
  }

  /**
   * The largest storage binding. A dry run costs a model as a GPU with large
   * bindings runs it (no tensor split into parts), up to the buffer size.
   */
  get maxBinding(): number {
    return this.profile?.dryRun ? this.device.limits.maxBufferSize : this.device.limits.maxStorageBufferBindingSize;
  }

  /** Replaces or adds a kernel from source text (tests, benchmarks' peers). */
  async addKernel(file: string, source: string): Promise<void> {
    this.modules.set(file, await loadKernel(this.device, file, source));
    for (const key of [...this.pipelines.keys()]) if (key.startsWith(`${file}|`)) this.pipelines.delete(key);
  }

  kernelModule(file: string): KernelModule {
    const m = this.modules.get(file);
    if (!m) throw new Error(`unknown kernel file kernels/${file}.wgsl`);
    return m;
  }

  /** The compiled pipeline for a kernel and specialisation, cached. */
  pipeline(call: KernelCall): Pipeline {
    const key = pipelineKey(call);
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const m = this.kernelModule(call.kernel);
    const entryName = call.entry ?? 'main';
    const entry = m.entries.get(entryName);
    if (!entry) throw new Error(`kernels/${m.file}.wgsl has no compute entry point '${entryName}'`);
    const constants: Record<string, number> = {};
    for (const [k, v] of Object.entries(call.overrides ?? {})) {
      if (!m.overrides.has(k)) throw new Error(`kernels/${m.file}.wgsl has no override '${k}'`);
      constants[k] = Number(v);
    }
    const layout = this.device.createBindGroupLayout({
      label: key,
      entries: entry.bindings.map((b) => ({
        binding: b.binding,
        visibility: 4, // GPUShaderStage.COMPUTE
        buffer: { type: b.kind },
      })),
    });
    this.device.pushErrorScope('validation');
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module: m.module, entryPoint: entryName, constants },
    });
    void this.device.popErrorScope().then((e) => {
      if (e) this.errors.push(new ShaderCompileError(key, [e.message]).message);
    });
    const p = { pipeline, layout, entry, key };
    this.pipelines.set(key, p);
    return p;
  }

  private packUniform(b: BindingInfo, values: UniformValues, key: string): number {
    const size = Math.ceil((b.size ?? 0) / 16) * 16;
    if (this.uniformUsed + size > UNIFORM_ARENA_BYTES) this.flush();
    const offset = this.uniformUsed;
    this.uniformUsed = Math.ceil((offset + size) / this.uniformAlign) * this.uniformAlign;
    const view = new DataView(this.uniformArena, offset, size);
    const members = b.members ?? [];
    for (const name of Object.keys(values)) {
      if (!members.some((m) => m.name === name)) throw new Error(`${key}: uniform ${b.name} has no member '${name}'`);
    }
    for (const m of members) {
      const v = values[m.name];
      if (v === undefined) throw new Error(`${key}: uniform ${b.name}.${m.name} not given`);
      const arr = typeof v === 'number' ? [v] : v;
      if (arr.length !== m.count) throw new Error(`${key}: uniform ${b.name}.${m.name} needs ${m.count} values`);
      for (let i = 0; i < m.count; i++) {
        const at = m.offset + 4 * i;
        if (m.kind === 'f32') view.setFloat32(at, arr[i], true);
        else if (m.kind === 'i32') view.setInt32(at, arr[i], true);
        else {
          if (!(arr[i] >= 0 && arr[i] <= 0xffffffff)) throw new Error(`${key}: uniform ${b.name}.${m.name} = ${arr[i]} is not a u32`);
          view.setUint32(at, arr[i], true);
        }
      }
    }
    return offset;
  }

  /**
   * Records one dispatch. Bindings are given by their WGSL variable names;
   * uniform structs as plain objects of member values.
   */
  dispatch(call: KernelCall, bindings: Readonly<Record<string, Binding>>, workgroups: readonly number[]): void {
    this.assertAlive();
    if (this.profile) {
      this.profile.dispatch(call.kernel, bindings);
      if (this.profile.dryRun) return;
    }
    const p = this.pipeline(call);
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0) throw new Error(`${p.key}: bad workgroup count ${workgroups.join('x')}`);
      if (n > maxWg) throw new DeviceLimitError('maxComputeWorkgroupsPerDimension', n, maxWg, p.key);
    }
    if (x * y * z === 0) return;
    for (const name of Object.keys(bindings)) {
      if (!p.entry.bindings.some((b) => b.name === name)) throw new Error(`${p.key}: kernel has no binding '${name}'`);
    }
    const entries: GPUBindGroupEntry[] = p.entry.bindings.map((b) => {
      const v = bindings[b.name];
      if (v === undefined) throw new Error(`${p.key}: binding '${b.name}' not given`);
      if (b.kind === 'uniform') {
        if (isRange(v)) throw new Error(`${p.key}: binding '${b.name}' is a uniform struct, give its members`);
        const offset = this.packUniform(b, v, p.key);
        return { binding: b.binding, resource: { buffer: this.uniformBuffer, offset, size: Math.ceil((b.size ?? 0) / 16) * 16 } };
      }
      if (!isRange(v)) throw new Error(`${p.key}: binding '${b.name}' needs a buffer`);
      const offset = v.offset ?? 0;
      const size = v.size ?? v.buffer.size - offset;
      if (size > this.maxBinding) throw new DeviceLimitError('maxStorageBufferBindingSize', size, this.maxBinding, `${p.key} binding '${b.name}'`);
      return { binding: b.binding, resource: { buffer: v.buffer, offset, size } };
    });
    const bindGroup = this.device.createBindGroup({ layout: p.layout, entries });
    if (!this.pass) {
      this.encoder = this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(p.pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    this.pendingDispatches++;
    this.dispatchCount++;
    if (this.pendingDispatches >= DISPATCHES_PER_FLUSH) this.flush();
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.flushUniforms();
    if (this.encoder && this.pass) {
      this.pass.end();
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
      this.pass = null;
      this.pendingDispatches = 0;
    }
    this.pool.destroyRetired();
  }

  /**
   * Writes host data into a buffer. Pending dispatches are submitted first: a
   * pooled buffer may still be read by them, and queue writes run before any
   * command buffer submitted after them.
   */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.assertAlive();
    if (this.pass) this.flush();
    if (data.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      data = padded;
    }
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies a buffer range back to the host. */
  async read(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    this.assertAlive();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size: Math.max(size, 4), usage: MAP_READ | COPY_DST });
    try {
      if (this.pass) {
        this.pass.end();
        this.pass = null;
      }
      this.flushUniforms();
      const enc = this.encoder ?? this.device.createCommandEncoder();
      enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
      this.device.queue.submit([enc.finish()]);
      this.encoder = null;
      this.pendingDispatches = 0;
      this.pool.destroyRetired();
      await staging.mapAsync(1 /* GPUMapMode.READ */).catch((e) => this.readbackFailed(e as Error));
      const out = staging.getMappedRange(0, size).slice(0, bytes);
      staging.unmap();
      this.throwErrors();
      return out;
    } finally {
      staging.destroy();
    }
  }

  private flushUniforms(): void {
    if (this.uniformUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformArena, 0, this.uniformUsed);
      this.uniformUsed = 0;
    }
  }

  /** Waits until the device has finished all submitted work; throws its errors. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwErrors();
  }

  private assertAlive(): void {
    if (this.lost) throw new GpuError(`the GPU device was lost (${this.lost})`);
  }

  /** A readback rejected: the device was lost under it (its loss is reported a moment later) or the copy failed. */
  private async readbackFailed(e: Error): Promise<never> {
    const settle = new Promise<null>((resolve) => setTimeout(() => resolve(null), 200));
    this.lost ??= await Promise.race([this.device.lost.then((l) => `${l.reason}: ${l.message}`), settle]);
    this.assertAlive();
    throw new GpuError(`a readback from the GPU failed: ${e.name} ${e.message}`);
  }

  /** Throws any validation or out-of-memory error the device reported. */
  throwErrors(): void {
    this.assertAlive();
    if (this.errors.length) {
      const msgs = this.errors.splice(0);
      const oom = msgs.some((m) => m.startsWith(OUT_OF_MEMORY));
      const hint = oom ? ' (the run needs less memory: a smaller --size, a lower --fps or --dtype f16)' : '';
      throw new GpuError(`the GPU reported ${msgs.length} error(s)${hint}:\n${msgs.join('\n')}`);
    }
  }

  destroy(): void {
    this.flush();
    this.pool.trim();
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}
