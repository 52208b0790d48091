// Finds the files of a Kandinsky Video release in a folder: the upstream
// release as published, or the same converted by `kandinsky convert`.
import { FormatError, KandinskyError } from '../errors.ts';
import { type Folder, type FolderLike, asFolder, fileListFolder, folderPath, hasFile, subfolder } from '../io/folder.ts';
import { MAX_CONFIG_JSON_BYTES, parseJsonText, readJsonText } from '../io/jsonFile.ts';
import { type MoVQConfig, IMAGE_MOVQ, parseMoVQConfig } from '../models/movq/config.ts';
import { type UNetConfig, parseUNetConfig, presetConfig } from '../models/unet/config.ts';
import { pathKind } from '../platform.ts';

/** The files of a release, as paths inside `folder`. */
export interface WeightsFolder {
  folder: Folder;
  /** {'unet', 'projections', 'null_embedding'} */
  keyframe: string;
  /** {'unet', 'null_embedding'} */
  interpolation: string;
  /** The MoVQ state dict. */
  movq: string;
  /** A Hugging Face T5 folder: config.json, tokenizer.json, model weights. */
  textEncoder: Folder;
}
const EXPECTED = `A weights folder holds the Kandinsky Video 1.0 release as ai-forever publishes it
(KandinskyVideo on the Hugging Face Hub) and the Flan-UL2 text encoder (google/flan-ul2):
  kandinsky_video.pt                 keyframe U-Net, projections, null embedding
  kandinsky_video_interpolation.pt   interpolation U-Net, null embedding
  movq.pt                            MoVQ
  flan-ul2/                          config.json, tokenizer.json (or spiece.model),
                                     model.safetensors or model.safetensors.index.json + shards
Each .pt may instead be the .safetensors that \`kandinsky convert\` writes from it.`;

async function firstExisting(folder: Folder, names: readonly string[]): Promise<string | undefined> {
  for (const n of names) if (await hasFile(folder, n)) return n;
  return undefined;
}

const CHECKPOINT_FILE = /^(kandinsky_video|kandinsky_video_interpolation|movq)\.(pt|safetensors)$/;

/**
 * A release picked as loose files rather than as a folder (a browser file
 * picker): the three Kandinsky checkpoints, and the text encoder's files
 * (config.json, tokenizer, weights), which are placed in `flan-ul2/`.
 */
export function releaseFromFiles(files: Iterable<File>): Folder {
  return fileListFolder(files, 'picked files', (f) => (CHECKPOINT_FILE.test(f.name) ? f.name : `flan-ul2/${f.name}`));
}

export async function resolveWeightsFolder(weights: FolderLike): Promise<WeightsFolder> {
  if (typeof weights === 'string' && (await pathKind(weights)) !== 'dir') throw new KandinskyError(`--weights ${weights}: not a folder.\n${EXPECTED}`);
  const folder = asFolder(weights);
  const file = (base: string) => firstExisting(folder, [`${base}.safetensors`, `${base}.pt`]);
  const keyframe = await file('kandinsky_video');
  const interpolation = await file('kandinsky_video_interpolation');
  const movq = await file('movq');
  let textEncoder: Folder | undefined;
  for (const sub of ['flan-ul2', 'flan_ul2', 'text_encoder', 't5']) {
    if (await hasFile(folder, `${sub}/config.json`)) {
      textEncoder = subfolder(folder, sub);
      break;
    }
  }
  const missing = [
    keyframe ? null : 'kandinsky_video.pt',
    interpolation ? null : 'kandinsky_video_interpolation.pt',
    movq ? null : 'movq.pt',
    textEncoder ? null : 'flan-ul2/config.json',
  ].filter((m): m is string => m !== null);
  if (missing.length) throw new KandinskyError(`weights ${folder.name}: missing ${missing.join(', ')}.\n${EXPECTED}`);
  return { folder, keyframe: keyframe!, interpolation: interpolation!, movq: movq!, textEncoder: textEncoder! };
}

/**
 * Model configurations: the released ones, or, when the weights folder has a
 * `config.json` ({"keyframe", "interpolation", "movq"}), those (e.g. the demo set).
 */
export interface ModelConfigs {
  keyframe: UNetConfig;
  interpolation: UNetConfig;
  movq: MoVQConfig;
}

/** The text of a weights folder's `config.json`, validated. */
export function parseModelConfigs(text: string, file: string): ModelConfigs {
  const raw = parseJsonText(text, file, MAX_CONFIG_JSON_BYTES);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(file, 'must hold an object {"keyframe", "interpolation", "movq"}');
  const sections = raw as Record<string, unknown>;
  return {
    keyframe: parseUNetConfig(sections.keyframe, `${file} keyframe`),
    interpolation: parseUNetConfig(sections.interpolation, `${file} interpolation`),
    movq: parseMoVQConfig(sections.movq, `${file} movq`),
  };
}

export async function readModelConfigs(weights: FolderLike): Promise<ModelConfigs> {
  const folder = asFolder(weights);
  const text = await readJsonText('config.json', MAX_CONFIG_JSON_BYTES, true, folder);
  if (text === null) return { keyframe: presetConfig('keyframe'), interpolation: presetConfig('interpolation'), movq: IMAGE_MOVQ };
  return parseModelConfigs(text, folderPath(folder, 'config.json'));
}
