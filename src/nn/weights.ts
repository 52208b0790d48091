// Weights by upstream key name. Modules declare every parameter they use
// (name and shape) while they are built; the loader then checks the
// declarations against the checkpoint all at once - missing, unexpected and
// mis-shaped keys are listed together - before anything is uploaded, and
// uploads tensor by tensor, so a checkpoint is never held whole in memory.
import type { Gpu } from '../gpu/gpu.ts';
import { WeightError } from '../errors.ts';
import type { Checkpoint, TensorEntry } from '../io/checkpoint.ts';
import { decodeF32 } from '../io/decode.ts';
import { keep } from '../tensor/scope.ts';
import { type DType, Tensor, shapeString } from '../tensor/tensor.ts';

/** Storage of weight matrices and conv kernels; vectors and scalars stay f32. */
export type WeightDType = 'f32' | 'f16';

/** Makes the form a parameter is kept in from its checkpoint tensor (e.g. a conv kernel packed for the GEMM). */
export type StoreAs = (loaded: Tensor, options: { persistent: true }) => Tensor;

export class Param {
  private value: Tensor | null = null;
  constructor(
    readonly key: string,
    /** The upstream shape, as in the checkpoint. */
    readonly shape: readonly number[],
    /** Matrices and kernels may be stored as f16; vectors stay f32. */
    readonly allowF16: boolean,
    /** Kept as made by this from the loaded tensor, which is then freed; as loaded when absent. */
    private readonly storeAs?: StoreAs,
  ) {}

  /** The loaded tensor, in its stored form. */
  get t(): Tensor {
    if (!this.value) throw new WeightError(`weight '${this.key}' used before it was loaded`);
    return this.value;
  }

  get loaded(): boolean {
    return this.value !== null;
  }

  /** Takes the loaded tensor (upstream shape), keeping its stored form. */
  set(t: Tensor): void {
    this.value?.dispose();
    if (!this.storeAs) {
      this.value = t;
      return;
    }
    // Made outside any open scope's reach: the param owns it.
    this.value = keep(this.storeAs(t, { persistent: true }));
    if (this.value !== t) t.dispose();
  }

  release(): void {
    this.value?.dispose();
    this.value = null;
  }
}

interface Registry {
  params: Map<string, Param>;
}

export class WeightBuilder {
  constructor(
    private readonly registry: Registry = { params: new Map() },
    readonly prefix = '',
  ) {}

  /** A child scope: keys below it are '<prefix>.<name>'. */
  pp(name: string | number): WeightBuilder {
    return new WeightBuilder(this.registry, this.key(String(name)));
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** Declares a parameter. Rank >= 2 tensors may be stored as f16. */
  param(name: string, shape: readonly number[], storeAs?: StoreAs): Param {
    const key = this.key(name);
    if (this.registry.params.has(key)) throw new Error(`weight '${key}' declared twice`);
    const p = new Param(key, shape, shape.length >= 2, storeAs);
    this.registry.params.set(key, p);
    return p;
  }

  params(): Param[] {
    return [...this.registry.params.values()];
  }

  parameterCount(): number {
    let n = 0;
    for (const p of this.registry.params.values()) n += p.shape.reduce((a, b) => a * b, 1);
    return n;
  }
}

export interface LoadOptions {
  dtype?: WeightDType;
  /** Keys in the checkpoint that the model deliberately does not use (e.g. quantizer tables). */
  ignore?: (key: string) => boolean;
  /** Prefix of the model's keys inside the checkpoint (e.g. 'unet.'). */
  prefix?: string;
  onProgress?: (done: number, total: number) => void;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  // A [1] parameter matches a 0-d stored scalar and vice versa.
  const n = (s: readonly number[]) => (s.length === 0 ? [1] : s);
  const x = n(a);
  const y = n(b);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/** Checks declarations against a checkpoint; throws one error listing every problem. */
export function checkWeights(params: readonly Param[], ckpt: Checkpoint, options: LoadOptions = {}): void {
  const prefix = options.prefix ?? '';
  const declared = new Set(params.map((p) => prefix + p.key));
  const missing: string[] = [];
  const misshaped: string[] = [];
  for (const p of params) {
    const e = ckpt.get(prefix + p.key);
    if (!e) missing.push(prefix + p.key);
    else if (!sameShape(e.shape, p.shape)) misshaped.push(`${prefix + p.key}: checkpoint ${shapeString(e.shape)}, model ${shapeString(p.shape)}`);
  }
  const unexpected = ckpt
    .keys()
    .filter((k) => k.startsWith(prefix) && !declared.has(k) && !(options.ignore?.(k.slice(prefix.length)) ?? false));
  if (missing.length || unexpected.length || misshaped.length) {
    const list = (title: string, keys: string[]) => (keys.length ? [`${title} (${keys.length}):`, ...keys.slice(0, 50).map((k) => `  ${k}`), ...(keys.length > 50 ? [`  ... and ${keys.length - 50} more`] : [])] : []);
    throw new WeightError(
      [`${ckpt.source}: weights do not match the model`, ...list('missing keys', missing), ...list('unexpected keys', unexpected), ...list('shape mismatches', misshaped)].join('\n'),
    );
  }
}

async function uploadEntry(gpu: Gpu, e: TensorEntry, p: Param, dtype: DType, source: string): Promise<Tensor> {
  const bytes = await e.read();
  const shape = p.shape;
  if (dtype === 'f16' && e.dtype === 'F16') return Tensor.fromBytes(gpu, bytes, shape, 'f16', { persistent: true });
  const values = decodeF32(bytes, e.dtype, `${source}: '${e.name}'`);
  return Tensor.from(gpu, values, shape, dtype, { persistent: true });
}

/** Checks, then uploads every declared parameter from the checkpoint. */
export async function loadWeights(gpu: Gpu, params: readonly Param[], ckpt: Checkpoint, options: LoadOptions = {}): Promise<void> {
  checkWeights(params, ckpt, options);
  const prefix = options.prefix ?? '';
  let done = 0;
  for (const p of params) {
    const e = ckpt.get(prefix + p.key)!;
    const dtype: DType = options.dtype === 'f16' && p.allowF16 ? 'f16' : 'f32';
    p.set(await uploadEntry(gpu, e, p, dtype, ckpt.source));
    options.onProgress?.(++done, params.length);
  }
}

export function releaseWeights(params: readonly Param[]): void {
  for (const p of params) p.release();
}
