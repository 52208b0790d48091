// Kandinsky 3 in the diffusers layout: the `config.json` of `unet/`
// (Kandinsky3UNet) and `movq/` (VQModel) read as our upstream-vocabulary
// configurations, and written back from them. diffusers hard-codes what
// upstream's constructors take as arguments (cross and self attention per
// level (F, T, T, T), expansion 4, compression 2, init = first width / 2,
// out = in channels), so a configuration outside that is refused by name.
import { FormatError } from '../errors.ts';
import { type MoVQConfig, MOVQ_DEFAULTS, MOVQ_GROUPS, parseMoVQConfig } from '../models/movq/config.ts';
import { type UNetConfig, parseUNetConfig } from '../models/unet/config.ts';

/** diffusers' per-level attention of Kandinsky3UNet, cut to the number of levels as its zip() does. */
const ATTENTION = [false, true, true, true] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function fields(raw: unknown, file: string, defaults: Record<string, unknown>) {
  if (!isObject(raw)) throw new FormatError(file, 'config.json must be a JSON object');
  const get = (k: string): unknown => raw[k] ?? defaults[k];
  const fail = (detail: string): never => {
    throw new FormatError(file, detail);
  };
  const int = (k: string): number => {
    const v = get(k);
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : fail(`"${k}" must be a positive integer, got ${JSON.stringify(v)}`);
  };
  const ints = (k: string): number[] => {
    const v = get(k);
    return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && x > 0) ? (v as number[]) : fail(`"${k}" must be a list of positive integers, got ${JSON.stringify(v)}`);
  };
  /** Widths as multiples of the first: [w0, w0·m1, ...] → m. */
  const multiples = (k: string): number[] => {
    const widths = ints(k);
    const mult = widths.map((w) => w / widths[0]);
    return mult.every(Number.isInteger) ? mult : fail(`"${k}" ${JSON.stringify(widths)}: every width must be a multiple of the first`);
  };
  return { raw, get, fail, int, ints, multiples };
}

const UNET_DEFAULTS = {
  in_channels: 4,
  time_embedding_dim: 1536,
  groups: 32,
  attention_head_dim: 64,
  layers_per_block: 3,
  block_out_channels: [384, 768, 1536, 3072],
  cross_attention_dim: 4096,
  encoder_hid_dim: 4096,
};

export interface DiffusersUNet {
  unet: UNetConfig;
  /** Input width of the text projection inside the diffusers U-Net (T5's d_model). */
  encoderHidDim: number;
}

/** `unet/config.json` of a Kandinsky3UNet. */
export function unetConfigFromDiffusers(raw: unknown, file: string): DiffusersUNet {
  const f = fields(raw, file, UNET_DEFAULTS);
  const widths = f.ints('block_out_channels');
  const levels = widths.length;
  if (levels > ATTENTION.length) f.fail(`Kandinsky3UNet has at most ${ATTENTION.length} levels, "block_out_channels" gives ${levels}`);
  const perLevel = f.get('layers_per_block');
  const numBlocks = Array.isArray(perLevel) ? f.ints('layers_per_block') : new Array<number>(levels).fill(f.int('layers_per_block'));
  if (numBlocks.length !== levels) f.fail(`"layers_per_block" has ${numBlocks.length} entries for ${levels} levels`);
  if (widths[0] % 2 !== 0) f.fail(`"block_out_channels"[0] = ${widths[0]} must be even (the stem has half its width)`);
  const channels = f.int('in_channels');
  const unet = parseUNetConfig(
    {
      model_channels: widths[0],
      init_channels: widths[0] / 2,
      num_channels: channels,
      out_channels: channels,
      time_embed_dim: f.int('time_embedding_dim'),
      context_dim: f.int('cross_attention_dim'),
      groups: f.int('groups'),
      head_dim: f.int('attention_head_dim'),
      expansion_ratio: 4,
      compression_ratio: 2,
      dim_mult: f.multiples('block_out_channels'),
      num_blocks: numBlocks,
      add_cross_attention: ATTENTION.slice(0, levels),
      add_self_attention: ATTENTION.slice(0, levels),
    },
    file,
  );
  return { unet, encoderHidDim: f.int('encoder_hid_dim') };
}

/** The Kandinsky3UNet config.json for a text-to-image configuration diffusers can express. */
export function unetConfigToDiffusers(c: UNetConfig, encoderHidDim: number): Record<string, unknown> {
  const levels = c.dim_mult.length;
  const problems = [
    c.num_frames !== null || c.interpolation ? 'it is a video model (frames or interpolation)' : null,
    c.context_dim === null ? 'it has no context_dim' : null,
    c.init_channels * 2 !== c.model_channels ? `init_channels ${c.init_channels} is not model_channels / 2` : null,
    c.num_channels !== c.out_channels ? 'num_channels differs from out_channels' : null,
    c.expansion_ratio !== 4 || c.compression_ratio !== 2 ? 'expansion_ratio is not 4 or compression_ratio not 2' : null,
    levels > ATTENTION.length || c.add_cross_attention.some((a, i) => a !== ATTENTION[i]) || c.add_self_attention.some((a, i) => a !== ATTENTION[i])
      ? 'its attention per level is not (F, T, T, T)'
      : null,
  ].filter((p) => p !== null);
  if (problems.length) throw new FormatError('unet config', `Kandinsky3UNet cannot express this U-Net: ${problems.join('; ')}`);
  return {
    _class_name: 'Kandinsky3UNet',
    in_channels: c.num_channels,
    time_embedding_dim: c.time_embed_dim,
    groups: c.groups,
    attention_head_dim: c.head_dim,
    layers_per_block: [...c.num_blocks],
    block_out_channels: c.dim_mult.map((m) => m * c.model_channels),
    cross_attention_dim: c.context_dim,
    encoder_hid_dim: encoderHidDim,
  };
}

const VQ_DEFAULTS = {
  in_channels: 3,
  out_channels: 3,
  layers_per_block: 1,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_type: 'group',
  mid_block_add_attention: true,
  lookup_from_codebook: false,
};

/** The nominal resolution we give a diffusers MoVQ: 32 at the last level (the release's 256 over 4 levels). */
function nominalResolution(levels: number): number {
  return 32 * 2 ** (levels - 1);
}

/** `movq/config.json` of a VQModel with spatial norm (the Kandinsky MoVQ). */
export function movqConfigFromDiffusers(raw: unknown, file: string): MoVQConfig {
  const f = fields(raw, file, VQ_DEFAULTS);
  const expect = (k: string, want: unknown, why: string) => {
    if (f.get(k) !== want) f.fail(`"${k}" is ${JSON.stringify(f.get(k))}; the Kandinsky MoVQ needs ${JSON.stringify(want)} (${why})`);
  };
  expect('norm_type', 'spatial', 'its decoder norms are conditioned on the latent');
  expect('act_fn', 'silu', 'SiLU throughout');
  expect('norm_num_groups', MOVQ_GROUPS, 'every norm has 32 groups');
  expect('mid_block_add_attention', true, 'the mid blocks have attention');
  expect('lookup_from_codebook', false, 'Kandinsky 3 decodes latents without quantizing');
  const latent = f.int('latent_channels');
  const embed = f.get('vq_embed_dim');
  if (embed !== null && embed !== undefined && embed !== latent) f.fail(`"vq_embed_dim" ${JSON.stringify(embed)} must equal "latent_channels" ${latent}`);
  const widths = f.ints('block_out_channels');
  const levels = widths.length;
  const types = (k: string, plain: string, attn: string): boolean[] => {
    const v = f.get(k);
    if (!Array.isArray(v) || v.length !== levels || !v.every((t) => t === plain || t === attn)) f.fail(`"${k}" must list ${levels} of "${plain}" / "${attn}", got ${JSON.stringify(v)}`);
    return (v as string[]).map((t) => t === attn);
  };
  const down = types('down_block_types', 'DownEncoderBlock2D', 'AttnDownEncoderBlock2D');
  const up = types('up_block_types', 'UpDecoderBlock2D', 'AttnUpDecoderBlock2D');
  if (up.some((a, k) => a !== down[levels - 1 - k])) f.fail('"up_block_types" must mirror "down_block_types" (attention at the same resolutions)');
  const resolution = nominalResolution(levels);
  return parseMoVQConfig(
    {
      ch: widths[0],
      ch_mult: f.multiples('block_out_channels'),
      num_res_blocks: f.int('layers_per_block'),
      attn_resolutions: down.flatMap((a, i) => (a ? [resolution >> i] : [])),
      z_channels: latent,
      resolution,
      in_channels: f.int('in_channels'),
      out_ch: f.int('out_channels'),
      double_z: false,
      dropout: 0,
    },
    file,
  );
}

/** The VQModel config.json for an image MoVQ; `codebookSize` rows of `quantize.embedding.weight`. */
export function movqConfigToDiffusers(c: MoVQConfig, codebookSize: number): Record<string, unknown> {
  const extras = (Object.keys(MOVQ_DEFAULTS) as (keyof typeof MOVQ_DEFAULTS)[]).filter(
    (k) => !['ch_mult', 'double_z', 'dropout'].includes(k) && JSON.stringify(c[k]) !== JSON.stringify(MOVQ_DEFAULTS[k]),
  );
  if (extras.length) throw new FormatError('movq config', `VQModel cannot express this MoVQ: ${extras.join(', ')} differ from the image MoVQ's`);
  const levels = c.ch_mult.length;
  const attn = c.ch_mult.map((_, i) => c.attn_resolutions.includes(c.resolution >> i));
  return {
    _class_name: 'VQModel',
    in_channels: c.in_channels,
    out_channels: c.out_ch,
    down_block_types: attn.map((a) => (a ? 'AttnDownEncoderBlock2D' : 'DownEncoderBlock2D')),
    up_block_types: attn.map((_, k) => (attn[levels - 1 - k] ? 'AttnUpDecoderBlock2D' : 'UpDecoderBlock2D')),
    block_out_channels: c.ch_mult.map((m) => m * c.ch),
    layers_per_block: c.num_res_blocks,
    act_fn: 'silu',
    latent_channels: c.z_channels,
    vq_embed_dim: c.z_channels,
    num_vq_embeddings: codebookSize,
    norm_num_groups: MOVQ_GROUPS,
    norm_type: 'spatial',
    mid_block_add_attention: true,
  };
}
