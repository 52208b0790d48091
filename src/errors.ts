// Typed errors. Every failure a user can cause names the file, tensor, key or
// limit involved, so the message alone says what to fix.

/**
 * A value from an untrusted file, for an error message: its JSON, cut to
 * `max` characters. Values too deeply nested to serialise are summarised, so
 * quoting one can never overflow the stack.
 */
export function quoteValue(v: unknown, max = 80): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    text = Array.isArray(v) ? '[a deeply nested list]' : '{a deeply nested object}';
  }
  if (text === undefined) return String(v);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

export class KandinskyError extends Error {
  override name = 'KandinskyError';
}

/** No usable WebGPU adapter; the message says what to install. */
export class NoAdapterError extends KandinskyError {
  override name = 'NoAdapterError';
}

/** A request exceeds what the adapter allows (binding size, workgroups, memory). */
export class DeviceLimitError extends KandinskyError {
  override name = 'DeviceLimitError';
  constructor(
    readonly limit: string,
    readonly requested: number,
    readonly available: number,
    context: string,
  ) {
    super(`${context}: needs ${limit} = ${requested}, the adapter allows ${available}`);
  }
}

/** A run would need more memory than the adapter or the machine offers: refused before it starts. */
export class ResourceError extends KandinskyError {
  override name = 'ResourceError';
  constructor(
    what: string,
    readonly needed: number,
    readonly available: number,
    source: string,
  ) {
    super(`${what} needs ${formatBytes(needed)}, ${formatBytes(available)} available (${source})`);
  }
}

/** Bytes for messages: MiB, or GiB from 1 GiB up. */
export function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** WGSL failed to compile or a pipeline failed validation. */
export class ShaderCompileError extends KandinskyError {
  override name = 'ShaderCompileError';
  constructor(
    readonly kernel: string,
    readonly messages: string[],
  ) {
    super(`kernel ${kernel} failed to compile:\n${messages.join('\n')}`);
  }
}

/** The device reported a validation, out-of-memory or device-loss error. */
export class GpuError extends KandinskyError {
  override name = 'GpuError';
}

/** Tensor shapes or dtypes do not fit an op. */
export class ShapeError extends KandinskyError {
  override name = 'ShapeError';
  constructor(
    readonly op: string,
    detail: string,
  ) {
    super(`${op}: ${detail}`);
  }
}

/** A checkpoint, tokenizer, config or case file is malformed. */
export class FormatError extends KandinskyError {
  override name = 'FormatError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A .pt file asks the unpickler for something a state dict never needs. */
export class UnsafePickleError extends FormatError {
  override name = 'UnsafePickleError';
}

/** Weights do not match what a model expects. */
export class WeightError extends KandinskyError {
  override name = 'WeightError';
}

export class WeightNotFoundError extends WeightError {
  override name = 'WeightNotFoundError';
  constructor(readonly key: string, source: string) {
    super(`${source}: missing tensor '${key}'`);
  }
}

export class WeightShapeError extends WeightError {
  override name = 'WeightShapeError';
  constructor(
    readonly key: string,
    readonly expected: readonly number[],
    readonly got: readonly number[],
    source: string,
  ) {
    super(`${source}: tensor '${key}' has shape [${got.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/** Command-line usage error: exit code 2. */
export class UsageError extends KandinskyError {
  override name = 'UsageError';
}

/** A NaN or Inf appeared during sampling; the message names the stage and step. */
export class NumericsError extends KandinskyError {
  override name = 'NumericsError';
}
