// T5 encoder and Kandinsky projection against test/reference/make_t5_cases.py.
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/cli/text.ts';
import { FormatError, WeightError } from '../../src/errors.ts';
import type { Checkpoint } from '../../src/io/checkpoint.ts';
import { decodeF32, decodeI32 } from '../../src/io/decode.ts';
import { encodeSafetensors, openSafetensorsFile, parseSafetensors } from '../../src/io/safetensors.ts';
import { FLAN_UL2, parseT5Config, readT5Config } from '../../src/models/t5/config.ts';
import { KandinskyProjection, conditionPrompt, nullConditioning } from '../../src/models/t5/conditioning.ts';
import { T5Encoder, loadT5Encoder, openT5Checkpoint, relativePositionBuckets, t5EncoderFor } from '../../src/models/t5/encoder.ts';
import '../../src/models/t5/parity.ts';
import { runT5Case } from '../../src/models/t5/parity.ts';
import { loadCase } from '../../src/parity/case.ts';
import { runParity } from '../../src/parity/run.ts';
import { loadWeights } from '../../src/nn/weights.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { T5Tokenizer } from '../../src/text/tokenizer.ts';
import { fixturePath } from '../fixtures.ts';
import { maxAbs, maxAbsDiff, testGpu } from '../helpers.ts';

const CASES = ['t5_gated_silu', 't5_gated_gelu'];
const tokDir = fixturePath('tokenizer');

/** A checkpoint's tensors, to rebuild variants of it in memory. */
async function tensorsOf(ckpt: Checkpoint): Promise<{ name: string; dtype: 'F32'; shape: number[]; data: Uint8Array }[]> {
  return Promise.all(ckpt.keys().map(async (k) => ({ name: k, dtype: 'F32' as const, shape: [...ckpt.get(k)!.shape], data: await ckpt.get(k)!.read() })));
}

describe('relative-position buckets', () => {
  it('match the torch f32 reference for several bucket counts and distances', async () => {
    const exp = JSON.parse(await readFile(join(tokDir, 'expected_ids.json'), 'utf8'));
    for (const b of exp.buckets as { num_buckets: number; max_distance: number; max_offset: number; buckets: number[] }[]) {
      // Query at max_offset, keys 0..2·max_offset: key − query runs −max_offset..max_offset.
      const l = 2 * b.max_offset + 1;
      const row = relativePositionBuckets(l, l, b.num_buckets, b.max_distance).subarray(b.max_offset * l, (b.max_offset + 1) * l);
      expect(Array.from(row), `${b.num_buckets}/${b.max_distance}`).toEqual(b.buckets);
    }
  });
});

describe('T5 config', () => {
  it('takes sizes and activation from config.json, defaults for the rest', async () => {
    const c = await readT5Config(join(tokDir, 'config.json'));
    expect([c.d_model, c.d_kv, c.d_ff, c.num_heads, c.num_layers, c.relative_attention_num_buckets, c.relative_attention_max_distance]).toEqual([32, 8, 64, 4, 2, 8, 16]);
    expect(c.feed_forward_proj).toBe('gated-silu');
    expect(parseT5Config({}).d_model).toBe(512);
  });

  it('names the file for a missing, malformed or invalid config', async () => {
    await expect(readT5Config('/nonexistent/config.json')).rejects.toThrow(/\/nonexistent\/config\.json: cannot read/);
    const tmp = await mkdtemp(join(tmpdir(), 't5cfg-'));
    try {
      await writeFile(join(tmp, 'config.json'), '{ nope');
      await expect(readT5Config(join(tmp, 'config.json'))).rejects.toThrow(FormatError);
      await expect(readT5Config(join(tmp, 'config.json'))).rejects.toThrow(/config\.json: not valid JSON/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    expect(() => parseT5Config({ d_model: -1 }, 'c.json')).toThrow(/c\.json: "d_model" must be an integer in \[1, 16777216\]/);
    // Absurd sizes, a deeply nested value (quoted without overflowing the stack), a huge file.
    expect(() => parseT5Config({ vocab_size: 1e300 }, 'c.json')).toThrow(/"vocab_size" must be an integer in \[1, 16777216\], got 1e\+300/);
    expect(() => parseT5Config(JSON.parse(`{"feed_forward_proj": ${'['.repeat(10000)}${']'.repeat(10000)}}`), 'c.json')).toThrow(/must be a string, got \[a deeply nested list\]/);
    const big = await mkdtemp(join(tmpdir(), 't5cfg-'));
    try {
      await writeFile(join(big, 'config.json'), `{"x": "${'x'.repeat(2 << 20)}"}`);
      await expect(readT5Config(join(big, 'config.json'))).rejects.toThrow(/config\.json: is \d+ bytes, over the limit of 1048576/);
    } finally {
      await rm(big, { recursive: true, force: true });
    }
    expect(() => parseT5Config({ feed_forward_proj: 'gated-tanh' }, 'c.json')).toThrow(/unsupported activation "tanh"/);
    expect(() => parseT5Config({ feed_forward_proj: 'silly-silu' }, 'c.json')).toThrow(/feed_forward_proj/);
    expect(() => parseT5Config({ relative_attention_num_buckets: 2 }, 'c.json')).toThrow(/no exact buckets/);
  });
});

describe('Flan-UL2 encoder layout', () => {
  it('declares the real encoder: 8.72B parameters in 291 tensors, block 0 alone holding the bias table', () => {
    const enc = new T5Encoder(FLAN_UL2);
    expect(enc.parameterCount()).toBe(8_721_797_632);
    const keys = enc.params().map((p) => p.key);
    expect(keys.length).toBe(32 * 9 + 3);
    expect(keys.filter((k) => k.includes('relative_attention_bias'))).toEqual(['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight']);
    expect(keys).toContain('encoder.block.31.layer.1.DenseReluDense.wi_1.weight');
    expect(enc.blockParams(7).length).toBe(9);
  });
});

describe('T5 encoder parity', () => {
  for (const name of CASES) {
    it(`${name} passes through the parity runner`, async () => {
      const r = await runParity(testGpu, fixturePath(`parity/${name}`));
      expect(r.error).toBeUndefined();
      expect(r.status, JSON.stringify(r.outputs)).toBe('pass');
    });
  }

  it('runs with f16 weight storage within f16 rounding', async () => {
    const gpu = await testGpu();
    const c = await loadCase(fixturePath('parity/t5_gated_silu'));
    try {
      const out = await runT5Case(gpu, c, { dtype: 'f16' });
      const ref = c.outputs.get('out')!.data;
      // f16 weights carry 2^-11 relative error; through 2 layers and the norms it stays ~1e-2 of max|out|.
      expect(maxAbsDiff(out.out.data, ref)).toBeLessThan(2e-2 * maxAbs(ref));
    } finally {
      await c.close();
    }
  });
});

describe('T5 loading', () => {
  let gpu: Awaited<ReturnType<typeof testGpu>>;
  let base: Awaited<ReturnType<typeof tensorsOf>>;
  let config: ReturnType<typeof parseT5Config>;
  let ids: Int32Array;
  let mask: Int32Array;
  let ref: Float32Array;
  beforeAll(async () => {
    gpu = await testGpu();
    const c = await loadCase(fixturePath('parity/t5_gated_silu'));
    base = await tensorsOf(c.weights);
    config = parseT5Config(c.spec.config);
    ids = Int32Array.from(c.inputs.get('input_ids')!.data);
    mask = Int32Array.from(c.inputs.get('attention_mask')!.data);
    ref = c.outputs.get('out')!.data as Float32Array;
    await c.close();
  });

  const variant = async (edit: (ts: typeof base) => typeof base) => parseSafetensors(await encodeSafetensors(edit(base.map((t) => ({ ...t })))), 'variant.safetensors');

  it('accepts the embedding as encoder.embed_tokens.weight alone, and ignores the decoder', async () => {
    const ck = await variant((ts) => {
      const out = ts.filter((t) => t.name !== 'shared.weight');
      const embed = ts.find((t) => t.name === 'shared.weight')!;
      out.push({ ...ts[2], name: 'decoder.block.0.layer.0.SelfAttention.q.weight' }, { ...embed, name: 'lm_head.weight' });
      return out;
    });
    const enc = await loadT5Encoder(gpu, config, ck);
    try {
      const out = enc.forward(ids, mask, 2);
      expect(maxAbsDiff((await out.read()) as Float32Array, ref)).toBeLessThan(1e-4 + 1e-3 * maxAbs(ref));
      out.dispose();
    } finally {
      enc.dispose();
    }
  });

  it('lists missing, unexpected and mis-shaped keys in one error', async () => {
    const ck = await variant((ts) => [
      ...ts.filter((t) => !t.name.endsWith('block.1.layer.1.DenseReluDense.wo.weight')),
      { ...ts[3], name: 'encoder.block.0.layer.0.SelfAttention.extra.weight' },
    ]);
    await expect(loadT5Encoder(gpu, config, ck)).rejects.toThrow(WeightError);
    await expect(loadT5Encoder(gpu, config, ck)).rejects.toThrow(/missing keys \(1\):\n\s+encoder\.block\.1\.layer\.1\.DenseReluDense\.wo\.weight[\s\S]*unexpected keys \(1\)/);
    await expect(loadT5Encoder(gpu, { ...config, d_ff: 48 }, await variant((ts) => ts))).rejects.toThrow(/shape mismatches/);
  });

  it('streams the weights layer by layer with the same result, leaving nothing loaded', async () => {
    const ck = await variant((ts) => ts);
    const enc = t5EncoderFor(config, ck);
    const layers: number[] = [];
    const out = await enc.encodeStreaming(gpu, ck, ids, mask, { batch: 2, onLayer: (d) => layers.push(d) });
    expect(maxAbsDiff((await out.read()) as Float32Array, ref)).toBeLessThan(1e-4 + 1e-3 * maxAbs(ref));
    out.dispose();
    expect(layers).toEqual([1, 2]);
    expect(enc.params().some((p) => p.loaded)).toBe(false);
  });

  it('padding positions do not change the real tokens (128-long padding vs the case)', async () => {
    const enc = await loadT5Encoder(gpu, config, await variant((ts) => ts));
    try {
      const L = ids.length / 2;
      const long = new Int32Array(2 * 128);
      const longMask = new Int32Array(2 * 128);
      for (let b = 0; b < 2; b++) {
        long.set(ids.subarray(b * L, (b + 1) * L), b * 128);
        longMask.set(mask.subarray(b * L, (b + 1) * L), b * 128);
      }
      const out = enc.forward(long, longMask, 2);
      const got = (await out.read()) as Float32Array;
      out.dispose();
      const d = config.d_model;
      for (let b = 0; b < 2; b++) {
        const n = mask.subarray(b * L, (b + 1) * L).reduce((s, m) => s + m, 0);
        const a = got.subarray(b * 128 * d, (b * 128 + n) * d);
        const r = ref.subarray(b * L * d, (b * L + n) * d);
        expect(maxAbsDiff(a, r)).toBeLessThan(1e-4 + 1e-3 * maxAbs(ref));
      }
    } finally {
      enc.dispose();
    }
  });
});

describe('Kandinsky projection (spec §1 step 3)', () => {
  let gpu: Awaited<ReturnType<typeof testGpu>>;
  let fx: Map<string, { shape: number[]; data: Float32Array | Int32Array }>;
  let proj: KandinskyProjection;
  beforeAll(async () => {
    gpu = await testGpu();
    const ck = await openSafetensorsFile(join(tokDir, 'conditioning.safetensors'));
    fx = new Map();
    for (const k of ck.keys()) {
      const e = ck.get(k)!;
      const bytes = await e.read();
      fx.set(k, { shape: [...e.shape], data: e.dtype === 'F32' ? decodeF32(bytes, e.dtype, k) : decodeI32(bytes, e.dtype, k) });
    }
    proj = new KandinskyProjection({ inDim: 32, contextDim: 32 });
    await loadWeights(gpu, proj.params(), ck, { ignore: () => true });
    await ck.close();
  });
  afterAll(() => proj?.dispose());

  const run = async (embName: string, maskName: string) => {
    const emb = fx.get(embName)!;
    const rows = fx.get(maskName)!.shape[0];
    const data = emb.data.subarray(0, rows * 128 * 32) as Float32Array;
    const t = Tensor.from(gpu, data, [rows, 128, 32]);
    try {
      return await proj.forward(t, Int32Array.from(fx.get(maskName)!.data.subarray(0, rows * 128)));
    } finally {
      t.dispose();
    }
  };

  it('zeroes masked positions, cuts to max count + 1 and zeroes a prompt holding inf', async () => {
    const c = await run('embeddings', 'attention_mask');
    const ref = fx.get('context')!;
    expect(c.length).toBe(10);
    expect([...c.context.shape]).toEqual(ref.shape);
    const got = (await c.context.read()) as Float32Array;
    // Linear over 32 + LayerNorm: f32 accumulation error ~1e-6 of values ~1.
    expect(maxAbsDiff(got, ref.data)).toBeLessThan(1e-5);
    expect(Array.from(c.contextMask)).toEqual(Array.from(fx.get('context_mask')!.data));
    // Row 2 held an inf: all zeros, mask all zeros.
    expect(got.subarray(2 * 10 * 32).every((v) => v === 0)).toBe(true);
    expect(c.contextMask.subarray(20).every((m) => m === 0)).toBe(true);
    // Row 1 (5 tokens): positions 5..9 are zero.
    expect(got.subarray((10 + 5) * 32, 20 * 32).every((v) => v === 0)).toBe(true);
    c.context.dispose();
  });

  it('keeps all 128 positions when a prompt fills them', async () => {
    const c = await run('embeddings', 'full.attention_mask');
    expect(c.length).toBe(128);
    expect(maxAbsDiff((await c.context.read()) as Float32Array, fx.get('full.context')!.data)).toBeLessThan(1e-5);
    expect(c.contextMask.every((m) => m === 1)).toBe(true);
    c.context.dispose();
  });

  it('null conditioning: token 0 = null embedding, mask [1, 0, ...]', async () => {
    const nullEmb = Float32Array.from({ length: 32 }, (_, i) => i - 16);
    const n = nullConditioning(gpu, nullEmb, 2, 4);
    const v = (await n.context.read()) as Float32Array;
    expect(Array.from(v.subarray(0, 32))).toEqual(Array.from(nullEmb));
    expect(v.subarray(32, 4 * 32).every((x) => x === 0)).toBe(true);
    expect(Array.from(v.subarray(4 * 32, 5 * 32))).toEqual(Array.from(nullEmb));
    expect(Array.from(n.contextMask)).toEqual([1, 0, 0, 0, 1, 0, 0, 0]);
    n.context.dispose();
  });

  it('conditionPrompt: the negative prompt replaces the null context and shares L', async () => {
    const tok = await T5Tokenizer.fromDir(tokDir);
    const tokens = tok.encodePrompt('A red car drifting, 4k video', 'blurry');
    const seen: Int32Array[] = [];
    const encode = async (ids: Int32Array, mask: Int32Array, batch: number) => {
      seen.push(mask);
      // A stand-in encoder: embeddings = id / 100 in every channel.
      return Tensor.from(gpu, Float32Array.from({ length: batch * 128 * 32 }, (_, i) => ids[Math.floor(i / 32)] / 100), [batch, 128, 32]);
    };
    const nullEmb = new Float32Array(32).fill(0.5);
    const withNeg = await conditionPrompt(gpu, tokens, encode, proj, nullEmb);
    const n = tokens.prompt.length;
    expect(withNeg.cond.length).toBe(n + 1);
    expect(withNeg.uncond.length).toBe(n + 1);
    expect(Array.from(seen[0].subarray(128))).toEqual(Array.from(tokens.prompt.attentionMask));
    expect(Array.from(withNeg.uncond.contextMask)).toEqual(Array.from(withNeg.cond.contextMask));
    expect([...withNeg.uncond.context.shape]).toEqual([1, n + 1, 32]);
    const u = (await withNeg.uncond.context.read()) as Float32Array;
    expect(u.subarray(0, 32).some((x) => x !== 0.5)).toBe(true);
    const without = await conditionPrompt(gpu, tok.encodePrompt('A red car drifting, 4k video'), encode, proj, nullEmb);
    expect(Array.from(((await without.uncond.context.read()) as Float32Array).subarray(0, 32))).toEqual(Array.from(nullEmb));
    expect(without.uncond.contextMask[0]).toBe(1);
    for (const c of [withNeg.cond, withNeg.uncond, without.cond, without.uncond]) c.context.dispose();
  });
});

describe('encode command (Hugging Face folder, sharded safetensors)', () => {
  it('writes the T5 output of the padded prompt; real tokens match the parity case', async () => {
    const c = await loadCase(fixturePath('parity/t5_gated_silu'));
    const tmp = await mkdtemp(join(tmpdir(), 't5enc-'));
    try {
      const ts = await tensorsOf(c.weights);
      // Two shards and an index, as Hugging Face stores large models.
      const half = Math.ceil(ts.length / 2);
      const shards = [ts.slice(0, half), ts.slice(half)];
      const weightMap: Record<string, string> = {};
      for (const [i, s] of shards.entries()) {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        await writeFile(join(tmp, file), await encodeSafetensors(s));
        for (const t of s) weightMap[t.name] = file;
      }
      await writeFile(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
      await writeFile(join(tmp, 'config.json'), JSON.stringify(c.spec.config));
      await copyFile(join(tokDir, 'tokenizer.json'), join(tmp, 'tokenizer.json'));
      const ck = await openT5Checkpoint(tmp);
      expect(ck.keys().length).toBe(ts.length);
      await ck.close();

      const out = join(tmp, 'emb.safetensors');
      expect(await encodeCommand('Luminescent jellyfish swims underwater, neon, 4k', tmp, out, { dtype: 'f32', quiet: true })).toBe(0);
      const emb = await openSafetensorsFile(out);
      const hidden = decodeF32(await emb.get('last_hidden_state')!.read(), 'F32', 'h');
      const am = decodeI32(await emb.get('attention_mask')!.read(), 'I32', 'm');
      expect(emb.get('last_hidden_state')!.shape).toEqual([1, 128, 32]);
      await emb.close();
      const n = am.reduce((s, m) => s + m, 0);
      const ref = c.outputs.get('out')!.data;
      expect(maxAbsDiff(hidden.subarray(0, n * 32), ref.subarray(0, n * 32))).toBeLessThan(1e-4 + 1e-3 * maxAbs(ref));
    } finally {
      await c.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('names the folder when it holds no weights', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 't5enc-'));
    try {
      await expect(openT5Checkpoint(tmp)).rejects.toThrow(/no T5 weights: expected one of model\.safetensors\.index\.json/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
