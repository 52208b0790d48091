// The T5 encoder's configuration, read from a Hugging Face `config.json`
// (spec §7: every size and the activation come from there). Field names are
// the config's own; missing keys take transformers' T5Config defaults.
import { FormatError, quoteValue } from '../../errors.ts';
import { type Folder, folderPath } from '../../io/folder.ts';
import { CONFIG_LIMITS, MAX_CONFIG_JSON_BYTES, readJsonFile } from '../../io/jsonFile.ts';

export type T5Activation = 'relu' | 'gelu' | 'gelu_new' | 'silu';

export interface T5Config {
  readonly vocab_size: number;
  readonly d_model: number;
  readonly d_kv: number;
  readonly d_ff: number;
  readonly num_heads: number;
  /** Encoder layers. */
  readonly num_layers: number;
  readonly relative_attention_num_buckets: number;
  readonly relative_attention_max_distance: number;
  readonly layer_norm_epsilon: number;
  /** 'relu', 'gelu', 'gated-gelu', 'gated-silu', ...: '[gated-]<activation>'. */
  readonly feed_forward_proj: string;
}

/** transformers' T5Config defaults (t5-small). */
export const T5_DEFAULTS: T5Config = {
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_heads: 8,
  num_layers: 6,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'relu',
};

/** Flan-UL2's encoder (spec §7), for benches and size checks. */
export const FLAN_UL2: T5Config = {
  vocab_size: 32128,
  d_model: 4096,
  d_kv: 256,
  d_ff: 16384,
  num_heads: 16,
  num_layers: 32,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'gated-silu',
};

const ACTIVATIONS: Readonly<Record<string, T5Activation>> = {
  relu: 'relu',
  gelu: 'gelu', // exact (erf) GELU, transformers' ACT2FN['gelu']
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new', // the same tanh approximation
  silu: 'silu',
  swish: 'silu',
};

export interface FeedForwardKind {
  /** Gated: act(wi_0·x) ⊙ (wi_1·x); otherwise act(wi·x). */
  gated: boolean;
  activation: T5Activation;
}

/**
 * transformers' reading of feed_forward_proj: '[gated-]<act>', except that
 * 'gated-gelu' means the tanh approximation (gelu_new), kept for the
 * original T5 v1.1 checkpoints.
 */
export function feedForwardKind(proj: string, file = 'config.json'): FeedForwardKind {
  const parts = proj.split('-');
  const gated = parts[0] === 'gated';
  if (parts.length > 2 || (parts.length === 2 && !gated)) {
    throw new FormatError(file, `feed_forward_proj "${proj}" is not "<activation>" or "gated-<activation>"`);
  }
  const name = proj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1];
  const activation = ACTIVATIONS[name];
  if (!activation) throw new FormatError(file, `feed_forward_proj "${proj}": unsupported activation "${name}" (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return { gated, activation };
}

const INT_KEYS = ['vocab_size', 'd_model', 'd_kv', 'd_ff', 'num_heads', 'num_layers', 'relative_attention_num_buckets', 'relative_attention_max_distance'] as const;

/** Validates a config.json object; unknown keys (decoder sizes, dropout, ...) are ignored. */
export function parseT5Config(raw: unknown, file = 'config.json'): T5Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(file, 'a T5 config must be a JSON object');
  const r = raw as Record<string, unknown>;
  const out: Record<string, number | string> = { ...T5_DEFAULTS };
  for (const k of INT_KEYS) {
    const v = r[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > CONFIG_LIMITS.size) {
      throw new FormatError(file, `"${k}" must be an integer in [1, ${CONFIG_LIMITS.size}], got ${quoteValue(v)}`);
    }
    out[k] = v;
  }
  const eps = r.layer_norm_epsilon;
  if (eps !== undefined && eps !== null) {
    if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) throw new FormatError(file, `"layer_norm_epsilon" must be a positive number, got ${quoteValue(eps)}`);
    out.layer_norm_epsilon = eps;
  }
  const proj = r.feed_forward_proj;
  if (proj !== undefined && proj !== null) {
    if (typeof proj !== 'string') throw new FormatError(file, `"feed_forward_proj" must be a string, got ${quoteValue(proj)}`);
    out.feed_forward_proj = proj;
  }
  const config = out as unknown as T5Config;
  feedForwardKind(config.feed_forward_proj, file);
  // Each sign gets half the buckets, half of those exact: the log-spaced
  // ones need at least one exact bucket and a max distance beyond them.
  const maxExact = Math.floor(Math.floor(config.relative_attention_num_buckets / 2) / 2);
  if (maxExact < 1) throw new FormatError(file, `relative_attention_num_buckets ${config.relative_attention_num_buckets} leaves no exact buckets (needs >= 4)`);
  if (config.relative_attention_max_distance <= maxExact) {
    throw new FormatError(file, `relative_attention_max_distance ${config.relative_attention_max_distance} must exceed the ${maxExact} exact offsets`);
  }
  return config;
}

/** Reads and validates a T5 `config.json`: a local path, or a path inside a folder. */
export async function readT5Config(path: string, folder?: Folder): Promise<T5Config> {
  return parseT5Config(await readJsonFile(path, MAX_CONFIG_JSON_BYTES, folder), folder ? folderPath(folder, path) : path);
}
