// The U-Net's configuration in upstream's vocabulary: the keyword arguments of
// `UNet.__init__` (KandinskyVideo `video_kandinsky3/model/unet.py`), snake_case,
// with upstream's defaults, plus `temporal_type` (ours, spec §6) which picks
// the paper's temporal variant of the keyframe model. A parity case's
// `config` object and a JSON config file both parse with `parseUNetConfig`.
import { FormatError, quoteValue } from '../../errors.ts';
import { CONFIG_LIMITS } from '../../io/jsonFile.ts';

export const TEMPORAL_TYPES = [
  /** Released keyframe model: temporal blocks with 1-D convs and 1-D attention. */
  'conv1d_attn1d_blocks',
  /** Temporal blocks whose two middle convs are 3×3×3 (spec §6, PROPOSED). */
  'conv3d_attn1d_blocks',
  /** Temporal blocks whose attention also sees the 3×3 spatial neighbourhood (spec §6, PROPOSED). */
  'conv1d_attn3d_blocks',
  /** Temporal layers mixed into the spatial Blocks and AttentionBlocks (spec §6, PROPOSED). */
  'conv1d_attn1d_layers',
] as const;

export type TemporalType = (typeof TEMPORAL_TYPES)[number];

/** A resolved configuration: every value present, `init_channels` filled in. */
export interface UNetConfig {
  readonly model_channels: number;
  readonly init_channels: number;
  readonly num_channels: number;
  readonly out_channels: number;
  readonly time_embed_dim: number;
  /** Text context width; null: no feature pooling and no cross attention. */
  readonly context_dim: number | null;
  readonly groups: number;
  readonly head_dim: number;
  readonly expansion_ratio: number;
  readonly compression_ratio: number;
  readonly dim_mult: readonly number[];
  readonly num_blocks: readonly number[];
  readonly add_cross_attention: readonly boolean[];
  readonly add_self_attention: readonly boolean[];
  /** Frames per video of the keyframe model; null for text-to-image and interpolation. */
  readonly num_frames: number | null;
  readonly interpolation: boolean;
  /** Only meaningful when num_frames is set (ignored otherwise, as the reference does). */
  readonly temporal_type: TemporalType;
}

/** What a caller may give: any subset, upstream's None as null. */
export type UNetConfigInput = { [K in keyof UNetConfig]?: UNetConfig[K] | null };

/** Upstream's constructor defaults. model_channels and time_embed_dim have none usable. */
export const UNET_DEFAULTS = {
  init_channels: null,
  num_channels: 3,
  out_channels: 3,
  context_dim: null,
  groups: 32,
  head_dim: 64,
  expansion_ratio: 4,
  compression_ratio: 2,
  dim_mult: [1, 2, 4, 8],
  num_blocks: [3, 3, 3, 3],
  add_cross_attention: [false, true, true, true],
  add_self_attention: [false, true, true, true],
  num_frames: null,
  interpolation: false,
  temporal_type: 'conv1d_attn1d_blocks',
} as const;

// Spec §4: the released 1.0 models share everything but their ends.
const REAL_BASE = {
  model_channels: 384,
  init_channels: 192,
  time_embed_dim: 1536,
  context_dim: 4096,
  groups: 32,
  head_dim: 64,
  expansion_ratio: 4,
  compression_ratio: 2,
  dim_mult: [1, 2, 4, 8],
  num_blocks: [3, 3, 3, 3],
  add_cross_attention: [false, true, true, true],
  add_self_attention: [false, true, true, true],
} as const;

export const UNET_PRESETS = {
  /** Kandinsky Video 1.0 keyframe model (temporal blocks, 15 frames). */
  keyframe: { ...REAL_BASE, num_channels: 4, out_channels: 4, num_frames: 15 },
  /** Kandinsky Video 1.0 interpolation model: [left 4, noisy 12, right 4] → 3 frames × 4 channels. */
  interpolation: { ...REAL_BASE, num_channels: 20, out_channels: 12, interpolation: true },
  /** Kandinsky 3.0 text-to-image. */
  text_to_image: { ...REAL_BASE, num_channels: 4, out_channels: 4 },
} as const satisfies Record<string, UNetConfigInput>;

export type UNetPreset = keyof typeof UNET_PRESETS;

export function isUNetPreset(name: string): name is UNetPreset {
  return Object.hasOwn(UNET_PRESETS, name);
}

const KEYS = [
  'model_channels',
  'init_channels',
  'num_channels',
  'out_channels',
  'time_embed_dim',
  'context_dim',
  'groups',
  'head_dim',
  'expansion_ratio',
  'compression_ratio',
  'dim_mult',
  'num_blocks',
  'add_cross_attention',
  'add_self_attention',
  'num_frames',
  'interpolation',
  'temporal_type',
] as const satisfies readonly (keyof UNetConfig)[];

/** Channels of the U-Net's levels: hidden[0] = init, hidden[l+1] = model_channels·dim_mult[l]. */
export function hiddenChannels(c: UNetConfig): number[] {
  return [c.init_channels, ...c.dim_mult.map((m) => c.model_channels * m)];
}

/** Does the keyframe model use temporal layers (inside the spatial blocks) rather than temporal blocks? */
export function temporalLayers(c: UNetConfig): boolean {
  return c.num_frames !== null && c.temporal_type === 'conv1d_attn1d_layers';
}

/** Does the keyframe model use separate temporal blocks (the released layout and two §6 variants)? */
export function temporalBlocks(c: UNetConfig): boolean {
  return c.num_frames !== null && c.temporal_type !== 'conv1d_attn1d_layers';
}

/**
 * Parses and validates a configuration (a parity case's `config`, a JSON
 * file, or a preset with overrides). Unknown keys are errors, so a misspelt
 * key cannot silently fall back to a default. `source` names the file in
 * errors.
 */
export function parseUNetConfig(raw: unknown, source = 'unet config'): UNetConfig {
  const fail = (detail: string): never => {
    throw new FormatError(source, `U-Net config: ${detail}`);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('must be an object');
  const obj = raw as Record<string, unknown>;
  const unknown = Object.keys(obj).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (unknown.length) fail(`unknown key(s) ${unknown.join(', ')} (known: ${KEYS.join(', ')})`);
  const get = (k: (typeof KEYS)[number]): unknown => {
    const v = obj[k];
    return v === undefined || v === null ? ((UNET_DEFAULTS as Record<string, unknown>)[k] ?? null) : v;
  };
  const int = (k: (typeof KEYS)[number], min = 1): number => {
    const v = get(k);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > CONFIG_LIMITS.size) fail(`${k} must be an integer in [${min}, ${CONFIG_LIMITS.size}], got ${quoteValue(v)}`);
    return v as number;
  };
  const optInt = (k: (typeof KEYS)[number]): number | null => (get(k) === null ? null : int(k));
  const list = <T>(k: (typeof KEYS)[number], ok: (x: unknown) => x is T, what: string): T[] => {
    const v = get(k);
    if (!Array.isArray(v) || v.length === 0 || v.length > CONFIG_LIMITS.levels || !v.every(ok)) fail(`${k} must be a list of 1 to ${CONFIG_LIMITS.levels} ${what}, got ${quoteValue(v)}`);
    return [...(v as T[])];
  };
  const isCount = (max: number) => (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= max;
  const isBool = (x: unknown): x is boolean => typeof x === 'boolean';

  const model_channels = int('model_channels');
  if (get('time_embed_dim') === null) fail('time_embed_dim is required (upstream builds Linear(init_channels, time_embed_dim))');
  const interpolation = get('interpolation');
  if (typeof interpolation !== 'boolean') fail(`interpolation must be true or false, got ${quoteValue(interpolation)}`);
  const temporal_type = get('temporal_type');
  if (!(TEMPORAL_TYPES as readonly unknown[]).includes(temporal_type)) fail(`temporal_type must be one of ${TEMPORAL_TYPES.join(', ')}, got ${quoteValue(temporal_type)}`);
  const config: UNetConfig = {
    model_channels,
    init_channels: optInt('init_channels') ?? model_channels,
    num_channels: int('num_channels'),
    out_channels: int('out_channels'),
    time_embed_dim: int('time_embed_dim'),
    context_dim: optInt('context_dim'),
    groups: int('groups'),
    head_dim: int('head_dim'),
    expansion_ratio: int('expansion_ratio'),
    compression_ratio: int('compression_ratio'),
    dim_mult: list('dim_mult', isCount(CONFIG_LIMITS.size), `integers in [1, ${CONFIG_LIMITS.size}]`),
    num_blocks: list('num_blocks', isCount(CONFIG_LIMITS.blocksPerLevel), `integers in [1, ${CONFIG_LIMITS.blocksPerLevel}]`),
    add_cross_attention: list('add_cross_attention', isBool, 'booleans'),
    add_self_attention: list('add_self_attention', isBool, 'booleans'),
    // As upstream: the interpolation model has no temporal blocks, whatever num_frames says.
    num_frames: interpolation ? null : optInt('num_frames'),
    interpolation: interpolation as boolean,
    temporal_type: temporal_type as TemporalType,
  };
  validate(config, fail);
  return config;
}

/** One level of the U-Net as the modules build it (upstream's argument lists, named). */
export interface LevelPlan {
  readonly inChannels: number;
  /** Up levels: the skip's channels concatenated to the input (0 at the bottom). */
  readonly catChannels: number;
  readonly outChannels: number;
  readonly numBlocks: number;
  /** The level's cross attention (only where the model has a context). */
  readonly crossAttention: boolean;
  readonly selfAttention: boolean;
  /** Down levels: every level but the last halves H and W. Up levels: every level but the first doubles them. */
  readonly resample: boolean;
}

/** Down levels in order, top (full resolution) first. */
export function downLevels(c: UNetConfig): LevelPlan[] {
  const hidden = hiddenChannels(c);
  const last = c.dim_mult.length - 1;
  return c.dim_mult.map((_, l) => ({
    inChannels: hidden[l],
    catChannels: 0,
    outChannels: hidden[l + 1],
    numBlocks: c.num_blocks[l],
    crossAttention: c.add_cross_attention[l] && c.context_dim !== null,
    selfAttention: c.add_self_attention[l],
    resample: l !== last,
  }));
}

/** Up levels in execution order, bottom first: up level i mirrors down level L-1-i. */
export function upLevels(c: UNetConfig): LevelPlan[] {
  const hidden = hiddenChannels(c);
  const last = c.dim_mult.length - 1;
  return c.dim_mult.map((_, i) => {
    const l = last - i;
    return {
      inChannels: hidden[l + 1],
      // The skip stored after down level l has its output channels; the bottom level stores none.
      catChannels: i === 0 ? 0 : hidden[l + 1],
      outChannels: hidden[l],
      numBlocks: c.num_blocks[l],
      crossAttention: c.add_cross_attention[l] && c.context_dim !== null,
      selfAttention: c.add_self_attention[l],
      resample: i !== 0,
    };
  });
}

/**
 * Upstream's UpSampleBlock channel pairs (a → b) for a level: (in+cat → in),
 * (in → in) × (n − 2), (in → out), zipped with n entries (so n = 1 keeps only
 * the first pair, as upstream's zip does).
 */
export function upPairs(p: LevelPlan): [number, number][] {
  const pairs: [number, number][] = [[p.inChannels + p.catChannels, p.inChannels]];
  for (let j = 0; j < p.numBlocks - 2; j++) pairs.push([p.inChannels, p.inChannels]);
  pairs.push([p.inChannels, p.outChannels]);
  return pairs.slice(0, p.numBlocks);
}

/** Channel arithmetic every module relies on, checked once with a message that names the setting. */
function validate(c: UNetConfig, fail: (detail: string) => never): void {
  const levels = c.dim_mult.length;
  for (const h of hiddenChannels(c)) if (h > CONFIG_LIMITS.size) fail(`model_channels·dim_mult gives ${h} channels, over ${CONFIG_LIMITS.size}`);
  for (const k of ['num_blocks', 'add_cross_attention', 'add_self_attention'] as const) {
    // Upstream zips these lists; a length mismatch silently drops levels there.
    if (c[k].length !== levels) fail(`${k} has ${c[k].length} entries, dim_mult has ${levels} levels`);
  }
  const norm = (channels: number, what: string) => {
    if (channels % c.groups !== 0) fail(`${what}: ${channels} channels do not split into groups = ${c.groups}`);
  };
  const heads = (channels: number, what: string) => {
    if (channels % c.head_dim !== 0) fail(`${what}: ${channels} channels are not a multiple of head_dim = ${c.head_dim}`);
  };
  const hiddenOf = (a: number, b: number) => Math.floor(Math.max(a, b) / c.compression_ratio);
  const resnet = (a: number, b: number, what: string) => {
    norm(a, `${what} ResNetBlock ${a} → ${b}`);
    const h = hiddenOf(a, b);
    if (h < 1) fail(`${what}: hidden width max(${a}, ${b}) / compression_ratio ${c.compression_ratio} is 0`);
    norm(h, `${what} ResNetBlock ${a} → ${b} hidden width`);
  };
  const blocks = temporalBlocks(c);
  const attention = (channels: number, what: string) => {
    norm(channels, what);
    heads(channels, what);
  };
  const temporalResnet = (channels: number, what: string) => {
    if (blocks) resnet(channels, channels, `${what} temporal`);
  };
  norm(c.init_channels, 'out_layer');
  if (c.context_dim !== null) heads(c.time_embed_dim, 'feature_pooling (time_embed_dim)');
  downLevels(c).forEach((p, l) => {
    const where = `down level ${l}`;
    if (p.selfAttention) attention(p.inChannels, `${where} self attention`);
    for (let j = 0; j < p.numBlocks; j++) {
      const a = j === 0 ? p.inChannels : p.outChannels;
      resnet(a, p.outChannels, where);
      resnet(p.outChannels, p.outChannels, where);
      temporalResnet(p.outChannels, where);
      if (p.crossAttention) attention(p.outChannels, `${where} cross attention`);
    }
  });
  upLevels(c).forEach((p, i) => {
    const where = `up level ${i}`;
    // With one block upstream's zip keeps only the (in+cat → in) pair, so the
    // level would hand `in` channels to a level that expects `out`.
    if (p.numBlocks === 1 && p.inChannels !== p.outChannels) {
      fail(`num_blocks = 1 at a level that changes ${p.inChannels} → ${p.outChannels} channels: upstream's UpSampleBlock then never reaches ${p.outChannels}`);
    }
    for (const [a, b] of upPairs(p)) {
      resnet(a, a, where);
      resnet(a, b, where);
      temporalResnet(a, where);
      if (p.crossAttention) attention(a, `${where} cross attention`);
    }
    if (p.selfAttention) attention(p.outChannels, `${where} self attention`);
  });
  // The temporal attentions (blocks or layers) sit on channels checked above.
}

/** A preset with optional overrides, parsed and validated. */
export function presetConfig(name: UNetPreset, overrides: UNetConfigInput = {}): UNetConfig {
  return parseUNetConfig({ ...UNET_PRESETS[name], ...overrides }, `preset '${name}'`);
}
