// The T5 tokenizer against the SentencePiece reference ids of
// test/reference/make_t5_cases.py (upstream's slow T5Tokenizer behaviour),
// loaded both from tokenizer.json and from spiece.model.
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { tokenizeCommand } from '../../src/cli/text.ts';
import { FormatError } from '../../src/errors.ts';
import { T5_MAX_TOKENS, T5Tokenizer } from '../../src/text/tokenizer.ts';
import { fixturePath } from '../fixtures.ts';

interface Expected {
  vocab_size: number;
  pad_id: number;
  eos_id: number;
  unk_id: number;
  cases: { text: string; ids: number[] }[];
  processor: { text: string; negative_text?: string; input_ids: number[]; attention_mask: number[]; negative_input_ids?: number[]; negative_attention_mask?: number[] }[];
}

const dir = fixturePath('tokenizer');
const expected: Expected = JSON.parse(await readFile(join(dir, 'expected_ids.json'), 'utf8'));
const jsonText = await readFile(join(dir, 'tokenizer.json'), 'utf8');
const fromJson = T5Tokenizer.fromTokenizerJson(jsonText, 'tokenizer.json');
const fromModel = T5Tokenizer.fromSentencePieceModel(new Uint8Array(await readFile(join(dir, 'spiece.model'))), 'spiece.model');

function mismatches(tok: T5Tokenizer): string[] {
  const bad: string[] = [];
  for (const c of expected.cases) {
    const got = tok.encode(c.text);
    if (got.join() !== c.ids.join()) bad.push(`${JSON.stringify(c.text)}: got [${got.join(',')}], want [${c.ids.join(',')}]`);
  }
  return bad;
}

describe('T5 tokenizer ids', () => {
  it('has at least 200 reference prompts, unicode and over-long ones included', () => {
    expect(expected.cases.length).toBeGreaterThanOrEqual(200);
    expect(expected.cases.some((c) => c.ids.length > 4 * T5_MAX_TOKENS)).toBe(true);
    expect(expected.cases.some((c) => c.ids.includes(expected.unk_id))).toBe(true);
    expect(expected.cases.some((c) => c.text === '')).toBe(true);
  });

  for (const [name, tok] of [
    ['tokenizer.json', fromJson],
    ['spiece.model', fromModel],
  ] as const) {
    it(`reproduces every reference id sequence from ${name}`, () => {
      expect(mismatches(tok)).toEqual([]);
    });

    it(`${name}: special ids and vocabulary size`, () => {
      expect(tok.vocabSize).toBe(expected.vocab_size);
      expect([tok.padId, tok.eosId, tok.unkId]).toEqual([expected.pad_id, expected.eos_id, expected.unk_id]);
      expect(tok.idToPiece(tok.eosId)).toBe('</s>');
      expect(tok.idToPiece(tok.vocabSize - 1)).toBe('<extra_id_0>');
    });
  }

  it('reads the older tokenizer.json forms (WhitespaceSplit + Metaspace, Precompiled alone) the same way', () => {
    const raw = JSON.parse(jsonText);
    raw.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true }] };
    raw.normalizer = raw.normalizer.normalizers[0];
    expect(mismatches(T5Tokenizer.fromTokenizerJson(JSON.stringify(raw)))).toEqual([]);
  });

  it('gives the gallery prompts their reference pieces', () => {
    const pieces = fromJson.tokenize('A red car drifting, 4k video');
    expect(pieces.at(-1)).toBe('</s>');
    expect(pieces.join('').replaceAll('\u2581', ' ').replace('</s>', '')).toBe(' A red car drifting, 4k video');
  });

  it('normalises with the charsmap as SentencePiece does (NFKC, spaces collapsed, dummy prefix)', () => {
    expect(fromJson.normalize('  Ｆｕｌｌ   ﬁne  ')).toBe('\u2581Full\u2581fine');
    expect(fromJson.normalize('   ')).toBe('');
    expect(fromJson.normalize('a\tb\nc')).toBe('\u2581a\u2581b\u2581c');
  });
});

describe('upstream processor: truncation, padding, mask, negative prompt', () => {
  it('matches upstream T5TextConditionProcessor.encode', () => {
    for (const c of expected.processor) {
      const { prompt, negative } = fromJson.encodePrompt(c.text, c.negative_text);
      expect(Array.from(prompt.inputIds), c.text).toEqual(c.input_ids);
      expect(Array.from(prompt.attentionMask), c.text).toEqual(c.attention_mask);
      if (c.negative_text === undefined) {
        expect(negative).toBeUndefined();
      } else {
        expect(Array.from(negative!.inputIds), c.negative_text).toEqual(c.negative_input_ids);
        expect(Array.from(negative!.attentionMask), c.negative_text).toEqual(c.negative_attention_mask);
      }
    }
  });

  it('cuts over-long prompts to 127 ids + </s> and pads short ones with the pad id', () => {
    for (const c of expected.cases) {
      const t = fromJson.encodeFixed(c.text);
      expect(t.inputIds.length).toBe(T5_MAX_TOKENS);
      const n = Math.min(c.ids.length, T5_MAX_TOKENS);
      expect(t.length).toBe(n);
      const want = c.ids.length > T5_MAX_TOKENS ? [...c.ids.slice(0, T5_MAX_TOKENS - 1), expected.eos_id] : c.ids;
      expect(Array.from(t.inputIds.subarray(0, n))).toEqual(want);
      expect(t.inputIds.subarray(n).every((id) => id === expected.pad_id)).toBe(true);
      expect(Array.from(t.attentionMask)).toEqual([...new Array(n).fill(1), ...new Array(T5_MAX_TOKENS - n).fill(0)]);
    }
  });

  it('negative prompt: cut to the prompt length with </s> last, the prompt mask attends its padding', () => {
    const { prompt, negative } = fromJson.encodePrompt('a cat', 'a very long negative prompt about many things');
    expect(negative!.length).toBe(prompt.length);
    expect(negative!.inputIds[prompt.length - 1]).toBe(expected.eos_id);
    expect(negative!.inputIds.subarray(prompt.length).every((id) => id === 0)).toBe(true);
    const short = fromJson.encodePrompt('a red car drifting on the mountain road', 'blur');
    const negIds = fromJson.encode('blur');
    expect(Array.from(short.negative!.inputIds.subarray(0, negIds.length))).toEqual(negIds);
    // Padding of the shorter negative is attended: the mask is the prompt's.
    expect(Array.from(short.negative!.attentionMask)).toEqual(Array.from(short.prompt.attentionMask));
    expect(short.negative!.attentionMask[negIds.length]).toBe(1);
    expect(short.negative!.inputIds[negIds.length]).toBe(expected.pad_id);
  });

  it('other maximum lengths', () => {
    const t = fromJson.encodeFixed('A car moving on the road from the sea to the mountains', 5);
    expect(t.length).toBe(5);
    expect(t.inputIds[4]).toBe(expected.eos_id);
    expect(() => fromJson.encodeFixed('x', 0)).toThrow(RangeError);
  });
});

describe('tokenizer files', () => {
  it('fromDir prefers tokenizer.json and falls back to spiece.model', async () => {
    expect((await T5Tokenizer.fromDir(dir)).source).toMatch(/tokenizer\.json$/);
    const tmp = await mkdtemp(join(tmpdir(), 't5tok-'));
    try {
      await copyFile(join(dir, 'spiece.model'), join(tmp, 'spiece.model'));
      const t = await T5Tokenizer.fromDir(tmp);
      expect(t.source).toMatch(/spiece\.model$/);
      expect(t.encode('A red car drifting, 4k video')).toEqual(expected.cases[1].ids);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('names the folder when it holds no tokenizer, and the file when it is malformed', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 't5tok-'));
    try {
      await expect(T5Tokenizer.fromDir(tmp)).rejects.toThrow(FormatError);
      await expect(T5Tokenizer.fromDir(tmp)).rejects.toThrow(tmp);
      await writeFile(join(tmp, 'tokenizer.json'), '{"model": ');
      await expect(T5Tokenizer.fromDir(tmp)).rejects.toThrow(/tokenizer\.json: not valid JSON/);
      await writeFile(join(tmp, 'tokenizer.json'), '{"model": {"type": "BPE", "vocab": {}}}');
      await expect(T5Tokenizer.fromDir(tmp)).rejects.toThrow(/tokenizer\.json: model\.type must be "Unigram"/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('rejects tokenizer.json pipelines it would not reproduce', () => {
    const raw = JSON.parse(jsonText);
    const bad = (edit: (r: Record<string, unknown>) => void, msg: RegExp) => {
      const r = structuredClone(raw);
      edit(r);
      expect(() => T5Tokenizer.fromTokenizerJson(JSON.stringify(r), 'tok.json')).toThrow(msg);
    };
    bad((r) => (r.normalizer = { type: 'Lowercase' }), /tok\.json: unsupported normalizer "Lowercase"/);
    bad((r) => (r.pre_tokenizer = { type: 'ByteLevel' }), /unsupported pre_tokenizer "ByteLevel"/);
    bad((r) => ((r.model as Record<string, unknown>).vocab = [['a', 'x']]), /model\.vocab\[0\]/);
    bad((r) => ((r.model as Record<string, unknown>).unk_id = 99999), /unk_id/);
    bad((r) => (r.added_tokens = []), /no '<\/s>' added token/);
    bad((r) => ((r.normalizer as { normalizers: { precompiled_charsmap: string }[] }).normalizers[0].precompiled_charsmap = '%%%'), /not base64/);
    bad((r) => ((r.normalizer as { normalizers: { precompiled_charsmap: string }[] }).normalizers[0].precompiled_charsmap = 'QUJD='), /not base64/);
    // An id far past the vocab would make a sparse id table of a billion entries.
    bad((r) => (r.added_tokens as { id: number }[]).push({ id: 1e9, content: '<far>' } as never), /added_tokens\[103\] has id 1000000000, past the 1300 vocab ids/);
    bad((r) => (r.added_tokens as { id: number }[]).push({ id: 1301, content: '<gap>' } as never), /added_tokens leave id 1300 unused/);
    bad((r) => ((r.model as Record<string, unknown>).vocab = Array.from({ length: (1 << 20) + 1 }, () => ['a', 0])), /model\.vocab has 1048577 pieces, over the limit of 1048576/);
    bad((r) => (r.added_tokens as { id: number }[]).push({ id: 1300, content: 'x'.repeat(1 << 16) } as never), /special tokens cannot be matched/);
  });

  it('rejects a file that is not a SentencePiece model', () => {
    expect(() => T5Tokenizer.fromSentencePieceModel(new Uint8Array([0xff, 0xff, 0xff]), 'x.model')).toThrow(FormatError);
    expect(() => T5Tokenizer.fromSentencePieceModel(new TextEncoder().encode('hello world'), 'x.model')).toThrow(/x\.model/);
  });
});

describe('tokenize command', () => {
  it('prints the padded ids, the mask and the pieces as JSON', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await tokenizeCommand('A red car drifting, 4k video', dir, { negativePrompt: 'blurry' })).toBe(0);
      const printed = JSON.parse(String(write.mock.calls[0][0]));
      const want = expected.cases[1].ids;
      expect(printed.input_ids.slice(0, want.length)).toEqual(want);
      expect(printed.input_ids.length).toBe(T5_MAX_TOKENS);
      expect(printed.attention_mask.reduce((a: number, b: number) => a + b, 0)).toBe(want.length);
      expect(printed.tokens.at(-1)).toBe('</s>');
      expect(printed.negative_attention_mask).toEqual(printed.attention_mask);
    } finally {
      write.mockRestore();
    }
  });
});
