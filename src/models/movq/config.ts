// MoVQ configuration: upstream's `generator_params` dict (Kandinsky 3 /
// Kandinsky Video `movq.py`), temporal decoder options included. Field names
// are the upstream snake_case keys, so a config.json section or a parity
// case's `config` parses as it stands; missing keys take upstream's defaults.
import { FormatError, quoteValue } from '../../errors.ts';
import { CONFIG_LIMITS } from '../../io/jsonFile.ts';

export type Triple = readonly [number, number, number];

export interface MoVQConfig {
  readonly ch: number;
  readonly ch_mult: readonly number[];
  readonly num_res_blocks: number;
  /** Nominal resolutions (`resolution` halved per level) that get attention. */
  readonly attn_resolutions: readonly number[];
  readonly z_channels: number;
  /** Nominal input size: decides where attention goes, never the real size. */
  readonly resolution: number;
  readonly in_channels: number;
  readonly out_ch: number;
  /** Encoder conv_out gives 2·z channels; `encode` needs false (quant_conv is z → z). */
  readonly double_z: boolean;
  /** Training only; read and ignored. */
  readonly dropout: number;
  /** Up/Downsample with their 3×3 conv (true in every released model). */
  readonly resamp_with_conv: boolean;
  /** SpatialNorm's extra 3×3 `conv` on zq (false in the release). */
  readonly add_conv: boolean;
  // ---- temporal decoder (upstream main `MOVQDecoder`)
  readonly temporal: boolean;
  readonly temporal_mid_blocks: boolean;
  readonly temporal_kernel_size: Triple;
  readonly temporal_conv_padding: Triple;
  readonly temporal_blocks: boolean;
  readonly temporal_attention_block: boolean;
  readonly build_3D_decoder: boolean;
  readonly flicker_augmentation: boolean;
}

/** Upstream defaults of the optional keys (Encoder/Decoder/MOVQDecoder signatures). */
export const MOVQ_DEFAULTS = {
  ch_mult: [1, 2, 4, 8],
  double_z: true,
  dropout: 0,
  resamp_with_conv: true,
  add_conv: false,
  temporal: false,
  temporal_mid_blocks: true,
  temporal_kernel_size: [3, 3, 3],
  temporal_conv_padding: [1, 1, 1],
  temporal_blocks: false,
  temporal_attention_block: false,
  build_3D_decoder: false,
  flicker_augmentation: false,
} as const satisfies Partial<MoVQConfig>;

const REQUIRED = ['ch', 'num_res_blocks', 'attn_resolutions', 'z_channels', 'resolution', 'in_channels', 'out_ch'] as const;
/** Keys upstream configs carry that MoVQ does not read (there is no quantizer module). */
const IGNORED = new Set(['embed_dim', 'n_embed']);
/** GroupNorm in every SpatialNorm has 32 groups (fixed upstream). */
export const MOVQ_GROUPS = 32;
export const MOVQ_EPS = 1e-6;

/** The image MoVQ of Kandinsky 3 / Kandinsky Video 1.0 (spec §5 real config). */
export const IMAGE_MOVQ: MoVQConfig = {
  ...MOVQ_DEFAULTS,
  ch: 256,
  ch_mult: [1, 2, 2, 4],
  num_res_blocks: 2,
  attn_resolutions: [32],
  z_channels: 4,
  resolution: 256,
  in_channels: 3,
  out_ch: 3,
  double_z: false,
  dropout: 0,
};

/**
 * The released video MoVQ (its configs.json, spec §5): temporal layers 3×3×3
 * in every decoder ResnetBlock (mid included) and TemporalAttnBlocks.
 */
export const VIDEO_MOVQ: MoVQConfig = {
  ...IMAGE_MOVQ,
  temporal: true,
  temporal_attention_block: true,
};

/** True when the decoder is upstream main's MOVQDecoder (the batch is one video). */
export function isVideoDecoder(c: MoVQConfig): boolean {
  return c.temporal || c.temporal_blocks || c.temporal_attention_block || c.build_3D_decoder;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Validates a generator_params dict (snake_case, as upstream's constructor
 * takes it) and fills the defaults. Every problem is reported at once.
 */
export function parseMoVQConfig(raw: unknown, source = 'generator_params'): MoVQConfig {
  if (!isObject(raw)) throw new FormatError(source, 'the MoVQ config must be an object (upstream generator_params)');
  const problems: string[] = [];
  const known = new Set<string>([...REQUIRED, ...Object.keys(MOVQ_DEFAULTS)]);
  const unknown = Object.keys(raw).filter((k) => !known.has(k) && !IGNORED.has(k));
  if (unknown.length) problems.push(`unknown keys ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${[...known].join(', ')})`);
  for (const k of REQUIRED) if (raw[k] === undefined) problems.push(`"${k}" is required`);

  const get = (k: string): unknown => raw[k] ?? (MOVQ_DEFAULTS as Record<string, unknown>)[k];
  const int = (k: string, min: number, max = CONFIG_LIMITS.size): number => {
    const v = get(k);
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
      if (v !== undefined) problems.push(`"${k}" must be an integer in [${min}, ${max}], got ${quoteValue(v)}`);
      return min;
    }
    return v as number;
  };
  const bool = (k: string): boolean => {
    const v = get(k);
    if (typeof v !== 'boolean') {
      problems.push(`"${k}" must be true or false, got ${quoteValue(v)}`);
      return false;
    }
    return v;
  };
  const ints = (k: string, min: number, length?: number): number[] => {
    const v = get(k);
    const lengthOk = length === undefined ? Array.isArray(v) && v.length <= CONFIG_LIMITS.levels : Array.isArray(v) && v.length === length;
    if (!Array.isArray(v) || !lengthOk || !v.every((x) => Number.isInteger(x) && x >= min && x <= CONFIG_LIMITS.size)) {
      if (v !== undefined) problems.push(`"${k}" must be a list of ${length ?? `at most ${CONFIG_LIMITS.levels}`} integers in [${min}, ${CONFIG_LIMITS.size}], got ${quoteValue(v)}`);
      return new Array<number>(length ?? 0).fill(min);
    }
    return [...(v as number[])];
  };

  const dropout = get('dropout');
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) problems.push(`"dropout" must be a number in [0, 1), got ${quoteValue(dropout)}`);
  const c: MoVQConfig = {
    ch: int('ch', 1),
    ch_mult: ints('ch_mult', 1),
    num_res_blocks: int('num_res_blocks', 0, CONFIG_LIMITS.blocksPerLevel),
    attn_resolutions: ints('attn_resolutions', 1),
    z_channels: int('z_channels', 1),
    resolution: int('resolution', 1),
    in_channels: int('in_channels', 1),
    out_ch: int('out_ch', 1),
    double_z: bool('double_z'),
    dropout: typeof dropout === 'number' ? dropout : 0,
    resamp_with_conv: bool('resamp_with_conv'),
    add_conv: bool('add_conv'),
    temporal: bool('temporal'),
    temporal_mid_blocks: bool('temporal_mid_blocks'),
    temporal_kernel_size: ints('temporal_kernel_size', 1, 3) as unknown as Triple,
    temporal_conv_padding: ints('temporal_conv_padding', 0, 3) as unknown as Triple,
    temporal_blocks: bool('temporal_blocks'),
    temporal_attention_block: bool('temporal_attention_block'),
    build_3D_decoder: bool('build_3D_decoder'),
    flicker_augmentation: bool('flicker_augmentation'),
  };
  if (c.ch_mult.length === 0 && Array.isArray(get('ch_mult'))) problems.push('"ch_mult" must have at least one level');
  for (const m of c.ch_mult) {
    if (c.ch * m > CONFIG_LIMITS.size) problems.push(`level width ch·ch_mult = ${c.ch}·${m} is over ${CONFIG_LIMITS.size}`);
    if ((c.ch * m) % MOVQ_GROUPS !== 0) problems.push(`level width ch·ch_mult = ${c.ch}·${m} is not a multiple of ${MOVQ_GROUPS} (every norm has ${MOVQ_GROUPS} groups)`);
  }
  if (c.ch % MOVQ_GROUPS !== 0) problems.push(`"ch" = ${c.ch} is not a multiple of ${MOVQ_GROUPS} (every norm has ${MOVQ_GROUPS} groups)`);
  // The temporal projection's output is mixed with its input, so it must keep
  // the video's shape: kernel = 2·padding + 1 in every dim (upstream fails otherwise).
  if (c.temporal) {
    for (let d = 0; d < 3; d++) {
      if (c.temporal_kernel_size[d] !== 2 * c.temporal_conv_padding[d] + 1) {
        problems.push(`temporal_kernel_size ${JSON.stringify(c.temporal_kernel_size)} with temporal_conv_padding ${JSON.stringify(c.temporal_conv_padding)} changes the video's shape (kernel must be 2·padding + 1)`);
        break;
      }
    }
  }
  if (problems.length) throw new FormatError(source, `bad MoVQ config:\n  ${problems.join('\n  ')}`);
  return c;
}

/** Channels of level i (level 0 = highest resolution). */
export function levelChannels(c: MoVQConfig, level: number): number {
  return c.ch * c.ch_mult[level];
}

/** The image size over the latent size: 2^(levels − 1). */
export function downFactor(c: MoVQConfig): number {
  return 2 ** (c.ch_mult.length - 1);
}
