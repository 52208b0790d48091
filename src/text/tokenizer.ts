// The T5 tokenizer (spec §1 step 1): a SentencePiece unigram model, loaded
// offline from a Hugging Face `tokenizer.json` or from the `spiece.model`
// protobuf itself.
//
// Upstream (KandinskyVideo's T5TextConditionProcessor) uses transformers'
// slow T5Tokenizer, i.e. SentencePiece itself, so we reproduce SentencePiece's
// semantics exactly whichever file we load:
//   1. special tokens written in the text (</s>, <pad>, <unk>, <extra_id_N>)
//      are split out first (longest match) and the chunks between them are
//      encoded independently;
//   2. normalisation: the precompiled charsmap (nmt_nfkc for T5) applied as
//      SentencePiece does - longest match from the left over UTF-8 bytes - then
//      leading/trailing/repeated spaces dropped, a dummy '▁' prefix, ' ' → '▁';
//   3. unigram Viterbi with f32 path scores (ties keep the longest last
//      piece), one-character unknown nodes scored min_score − 10, runs of
//      unknowns merged into one <unk>;
//   4. '</s>' appended unless the ids already end with it.
// @huggingface/tokenizers 0.2.0 was tried on the test prompts and does not
// reproduce these ids (4 of 215 differ even with the WhitespaceSplit +
// Metaspace form): it approximates the charsmap with String.normalize('NFKC')
// (a ZWJ becomes a space) and appends '</s>' after a literal '</s>'. So this
// file implements the model itself; it needs no package.
import { FormatError, quoteValue } from '../errors.ts';
import { type FolderLike, asFolder, folderPath, readAll } from '../io/folder.ts';
import { parseJsonText, readJsonText } from '../io/jsonFile.ts';

/** Upstream's tokens_length: prompts are cut or padded to this many ids. */
export const T5_MAX_TOKENS = 128;

/** T5Tokenizer's default number of <extra_id_N> sentinels. */
export const T5_EXTRA_IDS = 100;
/** Flan-UL2's tokenizer.json is 2.4 MB; the largest SentencePiece vocabularies (256k pieces) stay well under this. */
export const MAX_TOKENIZER_JSON_BYTES = 64 << 20;
/** Pieces in a vocabulary, added tokens included: four times the largest SentencePiece models'. */
export const MAX_VOCAB = 1 << 20;

const SPACE_SYMBOL = '\u2581'; // '▁'
const UNK_PENALTY = 10; // SentencePiece's kUnkPenalty
const FLT_MIN = 1.1754943508222875e-38; // SentencePiece starts max_score at FLT_MIN

// ---------------------------------------------------------------------------
// The precompiled charsmap: a darts-clone double-array trie over UTF-8 bytes
// whose values point into a blob of NUL-terminated replacement strings.
// Layout: u32 LE trie size in bytes, the trie's u32 units, then the blob.
// ---------------------------------------------------------------------------

class CharsMap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;

  constructor(blob: Uint8Array, file: string) {
    if (blob.byteLength < 4) throw new FormatError(file, `precompiled charsmap of ${blob.byteLength} bytes is too short`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = dv.getUint32(0, true);
    if (trieBytes % 4 !== 0 || trieBytes === 0 || 4 + trieBytes > blob.byteLength) {
      throw new FormatError(file, `precompiled charsmap: trie size ${trieBytes} does not fit its ${blob.byteLength} bytes`);
    }
    this.units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.normalized = blob.slice(4 + trieBytes);
  }

  /**
   * The longest rule matching a prefix of bytes[start..]: [length, offset of
   * its replacement], or null. darts-clone unit: bit 8 has_leaf, low 31 bits
   * value, label = unit & 0x800000ff, offset = (unit >> 10) << (bit 9 ? 8 : 0).
   */
  longestMatch(bytes: Uint8Array, start: number): [number, number] | null {
    const u = this.units;
    const offset = (unit: number) => (unit >>> 10) * ((unit & 0x200) !== 0 ? 256 : 1);
    let pos = offset(u[0]);
    let best: [number, number] | null = null;
    for (let i = start; i < bytes.length; i++) {
      pos ^= bytes[i];
      if (pos >= u.length) break;
      const unit = u[pos];
      if ((unit & 0x800000ff) !== bytes[i]) break;
      pos ^= offset(unit);
      if (pos >= u.length) break;
      if ((unit >>> 8) & 1) best = [i + 1 - start, u[pos] & 0x7fffffff];
    }
    return best;
  }

  /** The NUL-terminated replacement at `at`. */
  replacement(at: number): Uint8Array {
    let end = at;
    while (end < this.normalized.length && this.normalized[end] !== 0) end++;
    return this.normalized.subarray(at, end);
  }
}

function utf8CharLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  return 2;
}

export interface NormalizerSpec {
  charsMap: CharsMap | null;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

/** SentencePiece's Normalizer::Normalize (whitespace as prefix). */
function spmNormalize(text: string, spec: NormalizerSpec): string {
  const input = new TextEncoder().encode(text);
  const out: number[] = [];
  const space = [0xe2, 0x96, 0x81]; // '▁' in UTF-8
  // One normalised unit at `at`: [replacement bytes, consumed bytes].
  const prefix = (at: number): [Uint8Array, number] => {
    const m = spec.charsMap?.longestMatch(input, at) ?? null;
    if (m) return [spec.charsMap!.replacement(m[1]), m[0]];
    const n = Math.min(utf8CharLength(input[at]), input.length - at);
    return [input.subarray(at, at + n), n];
  };
  let at = 0;
  if (spec.removeExtraWhitespaces) {
    while (at < input.length) {
      const [rep, n] = prefix(at);
      if (!(rep.length === 1 && rep[0] === 0x20)) break;
      at += n;
    }
  }
  if (at >= input.length) return '';
  if (spec.addDummyPrefix) out.push(...(spec.escapeWhitespaces ? space : [0x20]));
  let prevSpace = spec.removeExtraWhitespaces;
  while (at < input.length) {
    const [rep, n] = prefix(at);
    let s = 0;
    if (prevSpace) while (s < rep.length && rep[s] === 0x20) s++;
    if (s < rep.length) {
      for (let k = s; k < rep.length; k++) {
        if (spec.escapeWhitespaces && rep[k] === 0x20) out.push(...space);
        else out.push(rep[k]);
      }
      prevSpace = rep[rep.length - 1] === 0x20;
    }
    at += n;
    if (!spec.removeExtraWhitespaces) prevSpace = false;
  }
  let end = out.length;
  if (spec.removeExtraWhitespaces) {
    const tail = spec.escapeWhitespaces ? space : [0x20];
    while (end >= tail.length && tail.every((b, k) => out[end - tail.length + k] === b)) end -= tail.length;
  }
  return new TextDecoder().decode(Uint8Array.from(out.slice(0, end)));
}

// ---------------------------------------------------------------------------
// The unigram model
// ---------------------------------------------------------------------------

type PieceKind = 'normal' | 'user';

interface Piece {
  id: number;
  score: number;
  kind: PieceKind;
}

export interface UnigramModel {
  /** Pieces the Viterbi may use (normal and user-defined), by text. */
  pieces: Map<string, Piece>;
  /** Every id's text, for tokenize(); special tokens included. */
  idToPiece: string[];
  unkId: number;
  eosId: number;
  padId: number;
  /** Tokens split out of the raw text before normalisation, by text. */
  special: Map<string, number>;
  normalizer: NormalizerSpec;
}

export interface TokenizedPrompt {
  /** maxLength ids: the prompt's ids (</s> last), then pad ids. */
  inputIds: Int32Array;
  /** 1 for the prompt's ids, 0 for padding (upstream's attention_mask). */
  attentionMask: Int32Array;
  /** Number of mask-1 positions. */
  length: number;
}

export interface PromptPair {
  prompt: TokenizedPrompt;
  /** Present when a negative prompt was given (spec §1 step 3). */
  negative?: TokenizedPrompt;
}

export class T5Tokenizer {
  private readonly maxPieceChars: number;
  private readonly minScore: number;
  private readonly maxScore: number;
  private readonly specialRe: RegExp | null;

  constructor(
    private readonly model: UnigramModel,
    /** Where it was loaded from, for messages. */
    readonly source: string,
  ) {
    let maxChars = 1;
    let min = Infinity;
    let max = FLT_MIN;
    for (const [text, p] of model.pieces) {
      maxChars = Math.max(maxChars, [...text].length);
      if (p.kind === 'normal') {
        min = Math.min(min, p.score);
        max = Math.max(max, p.score);
      }
    }
    this.maxPieceChars = maxChars;
    this.minScore = Number.isFinite(min) ? min : 0;
    this.maxScore = max;
    const alts = [...model.special.keys()].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    try {
      this.specialRe = alts.length ? new RegExp(`(${alts.join('|')})`) : null;
      this.specialRe?.test(''); // V8 compiles on first use: fail here, not mid-encode
    } catch (e) {
      throw new FormatError(source, `the ${alts.length} special tokens cannot be matched: ${(e as Error).message.slice(0, 80)}`);
    }
  }

  get vocabSize(): number {
    return this.model.idToPiece.length;
  }
  get padId(): number {
    return this.model.padId;
  }
  get eosId(): number {
    return this.model.eosId;
  }
  get unkId(): number {
    return this.model.unkId;
  }

  /** The text of an id ('▁' marks a word start). */
  idToPiece(id: number): string | undefined {
    return this.model.idToPiece[id];
  }

  /** SentencePiece's normalised form of a chunk ('▁' for spaces). */
  normalize(text: string): string {
    return spmNormalize(text, this.model.normalizer);
  }

  /** Ids of the text with '</s>' appended (unless already last), untruncated. */
  encode(text: string): number[] {
    const ids: number[] = [];
    const chunks = this.specialRe ? text.split(this.specialRe) : [text];
    for (const chunk of chunks) {
      const special = this.model.special.get(chunk);
      if (special !== undefined) ids.push(special);
      else if (chunk) ids.push(...this.viterbi(this.normalize(chunk)));
    }
    if (ids.at(-1) !== this.eosId) ids.push(this.eosId);
    return ids;
  }

  /**
   * Upstream's processor call: at most maxLength ids with '</s>' kept last
   * (the first maxLength − 1 ids, then '</s>'), padded with the pad id; mask
   * 1 for real tokens.
   */
  encodeFixed(text: string, maxLength = T5_MAX_TOKENS): TokenizedPrompt {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
    let ids = this.encode(text);
    if (ids.length > maxLength) {
      ids = ids.slice(0, maxLength - 1);
      if (ids.at(-1) !== this.eosId) ids.push(this.eosId);
    }
    return this.padded(ids, ids.length, maxLength);
  }

  /**
   * The prompt and, if given, the negative prompt as upstream's
   * T5TextConditionProcessor builds them: the negative's ids are cut to the
   * prompt's length with '</s>' forced into the last kept position, and it
   * takes the prompt's attention mask (so a shorter negative has its pad
   * positions attended).
   */
  encodePrompt(prompt: string, negativePrompt?: string, maxLength = T5_MAX_TOKENS): PromptPair {
    const p = this.encodeFixed(prompt, maxLength);
    if (negativePrompt === undefined) return { prompt: p };
    const n = this.encodeFixed(negativePrompt, maxLength);
    const ids = Array.from(n.inputIds.subarray(0, Math.min(n.length, p.length)));
    ids[ids.length - 1] = this.eosId;
    const negative = this.padded(ids, p.length, maxLength);
    return { prompt: p, negative };
  }

  private padded(ids: readonly number[], maskLength: number, maxLength: number): TokenizedPrompt {
    const inputIds = new Int32Array(maxLength).fill(this.padId);
    inputIds.set(ids);
    const attentionMask = new Int32Array(maxLength);
    attentionMask.fill(1, 0, maskLength);
    return { inputIds, attentionMask, length: maskLength };
  }

  /**
   * SentencePiece's unigram Viterbi (EncodeOptimized) over code points: path
   * scores accumulate in f32, a node replaces an earlier one only with a
   * strictly higher score (starts are visited left to right, so ties keep the
   * longest last piece); a character no piece covers alone gets an unknown
   * node scored min_score − 10; consecutive unknowns merge into one <unk>.
   */
  private viterbi(normalized: string): number[] {
    const chars = Array.from(normalized);
    const n = chars.length;
    if (n === 0) return [];
    const utf8Len = (c: string) => {
      const cp = c.codePointAt(0)!;
      return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    };
    const bestScore = new Float64Array(n + 1);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1);
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    const relax = (end: number, start: number, id: number, score: number) => {
      const cand = Math.fround(score + bestScore[start]);
      if (bestStart[end] === -1 || cand > bestScore[end]) {
        bestScore[end] = cand;
        bestStart[end] = start;
        bestId[end] = id;
      }
    };
    for (let start = 0; start < n; start++) {
      let text = '';
      let bytes = 0;
      let single = false;
      for (let end = start + 1; end <= Math.min(n, start + this.maxPieceChars); end++) {
        text += chars[end - 1];
        bytes += utf8Len(chars[end - 1]);
        const p = this.model.pieces.get(text);
        if (!p) continue;
        const score = p.kind === 'user' ? Math.fround(bytes * this.maxScore - 0.1) : p.score;
        relax(end, start, p.id, score);
        if (end === start + 1) single = true;
      }
      if (!single) relax(start + 1, start, this.unkId, unkScore);
    }
    const ids: number[] = [];
    for (let end = n; end > 0; end = bestStart[end]) ids.push(bestId[end]);
    ids.reverse();
    return ids.filter((id, i) => !(id === this.unkId && i > 0 && ids[i - 1] === this.unkId));
  }

  /** Pieces of the text (for display): the ids' texts. */
  tokenize(text: string): string[] {
    return this.encode(text).map((id) => this.model.idToPiece[id] ?? `<${id}>`);
  }

  // -------------------------------------------------------------------------
  // Loading
  // -------------------------------------------------------------------------

  /** Loads `tokenizer.json` from a folder, or `spiece.model` when there is no tokenizer.json. */
  static async fromDir(dir: FolderLike): Promise<T5Tokenizer> {
    const folder = asFolder(dir);
    const json = await readJsonText('tokenizer.json', MAX_TOKENIZER_JSON_BYTES, true, folder);
    if (json !== null) return T5Tokenizer.fromTokenizerJson(json, folderPath(folder, 'tokenizer.json'));
    const spiece = await folder.open('spiece.model');
    if (spiece) return T5Tokenizer.fromSentencePieceModel(await readAll(spiece, MAX_TOKENIZER_JSON_BYTES), spiece.name);
    throw new FormatError(folder.name, 'no tokenizer here: expected tokenizer.json (Hugging Face) or spiece.model (SentencePiece)');
  }

  /**
   * A Hugging Face tokenizer.json as the T5 / SentencePiece converters write
   * it: a Unigram model, a normaliser made of Precompiled (charsmap),
   * Replace, Strip and Sequence, a Metaspace (optionally after
   * WhitespaceSplit) pre-tokenizer, and added tokens split out of the raw
   * text. These are read as the SentencePiece settings they encode.
   */
  static fromTokenizerJson(text: string, file = 'tokenizer.json'): T5Tokenizer {
    return new T5Tokenizer(modelFromTokenizerJson(parseJsonText(text, file, MAX_TOKENIZER_JSON_BYTES), file), file);
  }

  /**
   * A SentencePiece model file (ModelProto). T5Tokenizer adds `extraIds`
   * sentinels <extra_id_N> with id vocab − 1 − N after the model's pieces.
   */
  static fromSentencePieceModel(bytes: Uint8Array, file = 'spiece.model', extraIds = T5_EXTRA_IDS): T5Tokenizer {
    return new T5Tokenizer(modelFromSentencePiece(bytes, file, extraIds), file);
  }
}

// ---------------------------------------------------------------------------
// tokenizer.json
// ---------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function base64Bytes(s: string, file: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    throw new FormatError(file, 'precompiled_charsmap is not base64');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const NORMALIZERS = ['Precompiled', 'Replace', 'Strip', 'Sequence'];
const PRE_TOKENIZERS = ['Metaspace', 'WhitespaceSplit', 'Sequence'];

/** The charsmap of a normaliser tree; other steps are what SentencePiece's whitespace rules already do. */
function readNormalizer(n: unknown, file: string): CharsMap | null {
  if (n === null || n === undefined) return null;
  if (!isObject(n) || typeof n.type !== 'string') throw new FormatError(file, 'normalizer must be an object with a "type"');
  switch (n.type) {
    case 'Precompiled': {
      const cm = n.precompiled_charsmap;
      if (cm === null || cm === '') return null;
      if (typeof cm !== 'string') throw new FormatError(file, 'Precompiled.precompiled_charsmap must be a base64 string');
      return new CharsMap(base64Bytes(cm, file), file);
    }
    case 'Sequence': {
      if (!Array.isArray(n.normalizers)) throw new FormatError(file, 'Sequence normalizer needs a "normalizers" list');
      let found: CharsMap | null = null;
      for (const sub of n.normalizers) {
        const cm = readNormalizer(sub, file);
        if (cm && found) throw new FormatError(file, 'more than one Precompiled normalizer');
        found = cm ?? found;
      }
      return found;
    }
    case 'Replace': {
      // The converters collapse runs of spaces, which SentencePiece's
      // remove_extra_whitespaces already does; anything else is a different tokenizer.
      const pat = isObject(n.pattern) ? (n.pattern.Regex ?? n.pattern.String) : undefined;
      const ok = (pat === ' {2,}' && (n.content === ' ' || n.content === SPACE_SYMBOL)) || (pat === '  ' && n.content === ' ');
      if (!ok) throw new FormatError(file, `unsupported Replace normalizer ${quoteValue(n.pattern)} → ${quoteValue(n.content)} (only the SentencePiece converters' space collapsing)`);
      return null;
    }
    case 'Strip':
      return null; // SentencePiece strips leading and trailing spaces itself
    default:
      throw new FormatError(file, `unsupported normalizer "${n.type}" (a T5 tokenizer.json uses ${NORMALIZERS.join(', ')})`);
  }
}

/** Whether the pre-tokenizer adds SentencePiece's dummy '▁' prefix. */
function readPreTokenizer(p: unknown, file: string): boolean {
  if (!isObject(p) || typeof p.type !== 'string') throw new FormatError(file, 'pre_tokenizer must be an object with a "type" (Metaspace)');
  switch (p.type) {
    case 'Metaspace': {
      if (p.replacement !== undefined && p.replacement !== SPACE_SYMBOL) throw new FormatError(file, `Metaspace replacement must be '${SPACE_SYMBOL}'`);
      if (typeof p.prepend_scheme === 'string') {
        if (!['always', 'first', 'never'].includes(p.prepend_scheme)) throw new FormatError(file, `unknown Metaspace prepend_scheme "${p.prepend_scheme}"`);
        return p.prepend_scheme !== 'never';
      }
      return p.add_prefix_space !== false;
    }
    case 'Sequence': {
      if (!Array.isArray(p.pretokenizers)) throw new FormatError(file, 'Sequence pre_tokenizer needs a "pretokenizers" list');
      let prefix: boolean | null = null;
      for (const sub of p.pretokenizers) {
        if (isObject(sub) && sub.type === 'WhitespaceSplit') continue;
        prefix = readPreTokenizer(sub, file);
      }
      if (prefix === null) throw new FormatError(file, 'pre_tokenizer Sequence has no Metaspace');
      return prefix;
    }
    default:
      throw new FormatError(file, `unsupported pre_tokenizer "${p.type}" (a T5 tokenizer.json uses ${PRE_TOKENIZERS.join(', ')})`);
  }
}

function modelFromTokenizerJson(raw: unknown, file: string): UnigramModel {
  if (!isObject(raw)) throw new FormatError(file, 'must hold a JSON object');
  const m = raw.model;
  if (!isObject(m) || m.type !== 'Unigram') {
    throw new FormatError(file, `model.type must be "Unigram" (a T5 SentencePiece tokenizer), got ${quoteValue(isObject(m) ? m.type : m)}`);
  }
  if (m.byte_fallback === true) throw new FormatError(file, 'byte_fallback Unigram models are not supported (T5 has none)');
  if (!Array.isArray(m.vocab) || m.vocab.length === 0) throw new FormatError(file, 'model.vocab must be a non-empty list of [piece, score]');
  if (m.vocab.length > MAX_VOCAB) throw new FormatError(file, `model.vocab has ${m.vocab.length} pieces, over the limit of ${MAX_VOCAB}`);
  const vocab: [string, number][] = m.vocab.map((e: unknown, i: number) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) {
      throw new FormatError(file, `model.vocab[${i}] must be [piece, score]`);
    }
    return [e[0], e[1]];
  });
  const unkId = m.unk_id;
  if (typeof unkId !== 'number' || !Number.isInteger(unkId) || unkId < 0 || unkId >= vocab.length) {
    throw new FormatError(file, `model.unk_id must be an id in [0, ${vocab.length})`);
  }
  const special = new Map<string, number>();
  const added = raw.added_tokens ?? [];
  if (!Array.isArray(added)) throw new FormatError(file, 'added_tokens must be a list');
  // Ids after the vocab must be contiguous, so none can exceed vocab + added.
  const maxId = vocab.length + added.length - 1;
  for (const [i, t] of added.entries()) {
    if (!isObject(t) || typeof t.content !== 'string' || !t.content || !Number.isInteger(t.id) || (t.id as number) < 0) {
      throw new FormatError(file, `added_tokens[${i}] needs "id" and "content"`);
    }
    if ((t.id as number) > maxId) throw new FormatError(file, `added_tokens[${i}] has id ${t.id}, past the ${vocab.length} vocab ids and ${added.length} added tokens`);
    special.set(t.content, t.id as number);
  }
  const idToPiece = vocab.map(([p]) => p);
  for (const [content, id] of special) {
    if (id >= idToPiece.length) idToPiece[id] = content;
  }
  for (let id = vocab.length; id < idToPiece.length; id++) {
    if (idToPiece[id] === undefined) throw new FormatError(file, `added_tokens leave id ${id} unused after the ${vocab.length} vocab ids`);
  }
  const excluded = new Set<number>([unkId, ...special.values()]);
  const pieces = new Map<string, Piece>();
  vocab.forEach(([text, score], id) => {
    if (!excluded.has(id) && !pieces.has(text)) pieces.set(text, { id, score: Math.fround(score), kind: 'normal' });
  });
  const eosId = special.get('</s>');
  if (eosId === undefined) throw new FormatError(file, "no '</s>' added token: not a T5 tokenizer");
  const charsMap = readNormalizer(raw.normalizer, file);
  const addDummyPrefix = readPreTokenizer(raw.pre_tokenizer, file);
  return {
    pieces,
    idToPiece,
    unkId,
    eosId,
    padId: special.get('<pad>') ?? 0,
    special,
    normalizer: { charsMap, addDummyPrefix, removeExtraWhitespaces: true, escapeWhitespaces: true },
  };
}

// ---------------------------------------------------------------------------
// spiece.model: the ModelProto protobuf, read with a minimal wire-format parser
// ---------------------------------------------------------------------------

class ProtoReader {
  private at = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly file: string,
    private readonly end = bytes.length,
    start = 0,
  ) {
    this.at = start;
  }
  get done(): boolean {
    return this.at >= this.end;
  }
  /** A varint as a JS number (int32 fields: take `| 0`). */
  varint(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new FormatError(this.file, 'truncated protobuf varint');
      const b = this.bytes[this.at++];
      if (i < 7) value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return value;
    }
    throw new FormatError(this.file, 'protobuf varint longer than 10 bytes');
  }
  tag(): [field: number, wire: number] {
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
  }
  bytesField(): [start: number, end: number] {
    const n = this.varint();
    if (this.at + n > this.end) throw new FormatError(this.file, `protobuf field of ${n} bytes runs past its message`);
    const s = this.at;
    this.at += n;
    return [s, this.at];
  }
  float32(): number {
    if (this.at + 4 > this.end) throw new FormatError(this.file, 'truncated protobuf float');
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at, 4).getFloat32(0, true);
    this.at += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.at += 8;
    else if (wire === 2) this.bytesField();
    else if (wire === 5) this.at += 4;
    else throw new FormatError(this.file, `unsupported protobuf wire type ${wire}`);
    if (this.at > this.end) throw new FormatError(this.file, 'truncated protobuf field');
  }
  sub(range: [number, number]): ProtoReader {
    return new ProtoReader(this.bytes, this.file, range[1], range[0]);
  }
}

const SP_NORMAL = 1;
const SP_UNKNOWN = 2;
const SP_CONTROL = 3;
const SP_USER_DEFINED = 4;
const SP_UNUSED = 5;
const SP_BYTE = 6;

function modelFromSentencePiece(bytes: Uint8Array, file: string, extraIds: number): UnigramModel {
  const r = new ProtoReader(bytes, file);
  const raw: { text: string; score: number; type: number }[] = [];
  const trainer = { modelType: 1, unkId: 0, eosId: 2, padId: -1, byteFallback: false };
  const norm = { charsmap: null as Uint8Array | null, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let treatAsSuffix = false;
  try {
    while (!r.done) {
      const [field, wire] = r.tag();
      if (field === 1 && wire === 2) {
        const p = r.sub(r.bytesField());
        const piece = { text: '', score: 0, type: SP_NORMAL };
        while (!p.done) {
          const [f, w] = p.tag();
          if (f === 1 && w === 2) piece.text = decoder.decode(bytes.subarray(...p.bytesField()));
          else if (f === 2 && w === 5) piece.score = p.float32();
          else if (f === 3 && w === 0) piece.type = p.varint();
          else p.skip(w);
        }
        raw.push(piece);
      } else if (field === 2 && wire === 2) {
        const t = r.sub(r.bytesField());
        while (!t.done) {
          const [f, w] = t.tag();
          if (w !== 0) t.skip(w);
          else if (f === 3) trainer.modelType = t.varint();
          else if (f === 24) treatAsSuffix = t.varint() !== 0;
          else if (f === 35) trainer.byteFallback = t.varint() !== 0;
          else if (f === 40) trainer.unkId = t.varint() | 0;
          else if (f === 42) trainer.eosId = t.varint() | 0;
          else if (f === 43) trainer.padId = t.varint() | 0;
          else t.varint();
        }
      } else if (field === 3 && wire === 2) {
        const n = r.sub(r.bytesField());
        while (!n.done) {
          const [f, w] = n.tag();
          if (f === 2 && w === 2) norm.charsmap = bytes.slice(...n.bytesField());
          else if (f === 3 && w === 0) norm.addDummyPrefix = n.varint() !== 0;
          else if (f === 4 && w === 0) norm.removeExtraWhitespaces = n.varint() !== 0;
          else if (f === 5 && w === 0) norm.escapeWhitespaces = n.varint() !== 0;
          else n.skip(w);
        }
      } else r.skip(wire);
    }
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(file, `not a SentencePiece model: ${(e as Error).message}`);
  }
  if (raw.length === 0) throw new FormatError(file, 'not a SentencePiece model: no pieces');
  if (trainer.modelType !== 1) throw new FormatError(file, `model_type ${trainer.modelType} is not UNIGRAM (1)`);
  if (trainer.byteFallback || raw.some((p) => p.type === SP_BYTE)) throw new FormatError(file, 'byte-fallback models are not supported (T5 has none)');
  if (treatAsSuffix) throw new FormatError(file, 'treat_whitespace_as_suffix is not supported (T5 does not use it)');
  const ids = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= raw.length) throw new FormatError(file, `${what} ${id} is not a piece id`);
    return id;
  };
  const unkId = ids(trainer.unkId, 'unk_id');
  const eosId = ids(trainer.eosId, 'eos_id');
  const padId = trainer.padId < 0 ? 0 : ids(trainer.padId, 'pad_id');
  const pieces = new Map<string, Piece>();
  const special = new Map<string, number>();
  raw.forEach((p, id) => {
    if (p.type === SP_NORMAL || p.type === SP_USER_DEFINED) {
      if (!pieces.has(p.text)) pieces.set(p.text, { id, score: p.score, kind: p.type === SP_NORMAL ? 'normal' : 'user' });
    } else if (p.type === SP_CONTROL || p.type === SP_UNKNOWN) {
      special.set(p.text, id);
    } else if (p.type !== SP_UNUSED) {
      throw new FormatError(file, `piece ${id} has unknown type ${p.type}`);
    }
  });
  const idToPiece = raw.map((p) => p.text);
  const total = raw.length + extraIds;
  for (let i = extraIds - 1; i >= 0; i--) {
    const tok = `<extra_id_${i}>`;
    idToPiece.push(tok);
    special.set(tok, total - 1 - i);
  }
  const charsMap = norm.charsmap && norm.charsmap.length ? new CharsMap(norm.charsmap, file) : null;
  return {
    pieces,
    idToPiece,
    unkId,
    eosId,
    padId,
    special,
    normalizer: { charsMap, addDummyPrefix: norm.addDummyPrefix, removeExtraWhitespaces: norm.removeExtraWhitespaces, escapeWhitespaces: norm.escapeWhitespaces },
  };
}
