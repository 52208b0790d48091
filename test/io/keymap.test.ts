// The Kandinsky 3 ↔ diffusers key map (weights/keymaps/kandinsky3-diffusers.json)
// against an independent statement of diffusers' names (test/reference/make_keymap_fixture.py),
// both ways, and the strict checkpoint view built on it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FormatError, WeightError } from '../../src/errors.ts';
import type { Checkpoint, TensorEntry } from '../../src/io/checkpoint.ts';
import { KeyMap, kandinsky3DiffusersKeyMap, mappedCheckpoint } from '../../src/io/keymap.ts';
import { parseMoVQConfig } from '../../src/models/movq/config.ts';
import { MoVQ } from '../../src/models/movq/movq.ts';
import { parseUNetConfig } from '../../src/models/unet/config.ts';
import { UNet } from '../../src/models/unet/unet.ts';
import { WeightBuilder } from '../../src/nn/weights.ts';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/keymap/kandinsky3-diffusers-keys.json', import.meta.url), 'utf8')) as {
  unet_config: Record<string, unknown>;
  movq_config: Record<string, unknown>;
  unet: [string, string][];
  movq: [string, string, boolean][];
};
const levels = (fixture.movq_config.ch_mult as number[]).length;

/** An in-memory checkpoint of F32 tensors whose bytes are their key (enough to tell them apart). */
function memoryCheckpoint(shapes: Record<string, number[]>): Checkpoint {
  const entry = (name: string): TensorEntry => ({ name, dtype: 'F32', shape: shapes[name], byteLength: 0, read: async () => new TextEncoder().encode(name) });
  return { source: 'memory', keys: () => Object.keys(shapes), get: (k) => (k in shapes ? entry(k) : undefined), metadata: {}, close: async () => {} };
}

describe('Kandinsky 3 diffusers key map', () => {
  it("maps every U-Net key as diffusers' conversion does, and back", async () => {
    const map = await kandinsky3DiffusersKeyMap();
    const ours = new UNet(new WeightBuilder(), parseUNetConfig(fixture.unet_config)).params().map((p) => p.key);
    expect(new Set(ours)).toEqual(new Set(fixture.unet.map(([u]) => u)));
    for (const [upstream, diffusers] of fixture.unet) {
      expect(map.mapKey('unet', upstream, 'upstream')?.key, upstream).toBe(diffusers);
      expect(map.mapKey('unet', diffusers, 'diffusers')?.key, diffusers).toBe(upstream);
    }
  });

  it("maps every MoVQ key as diffusers' VQModel names it (1×1 attention convs as matrices), and back", async () => {
    const map = await kandinsky3DiffusersKeyMap();
    const ours = new MoVQ(parseMoVQConfig(fixture.movq_config)).params().map((p) => p.key);
    expect(new Set(ours)).toEqual(new Set(fixture.movq.map(([u]) => u)));
    for (const [upstream, diffusers, matrix] of fixture.movq) {
      const there = map.mapKey('movq', upstream, 'upstream', { levels });
      expect(there, upstream).toEqual({ key: diffusers, reshape: matrix ? 'conv1x1' : null });
      expect(map.mapKey('movq', diffusers, 'diffusers', { levels })?.key, diffusers).toBe(upstream);
    }
  });

  it('maps the projection into the diffusers U-Net file', async () => {
    const map = await kandinsky3DiffusersKeyMap();
    expect(map.mapKey('projection', '0.weight', 'upstream')?.key).toBe('encoder_hid_proj.projection_linear.weight');
    expect(map.mapKey('projection', 'encoder_hid_proj.projection_norm.bias', 'diffusers')?.key).toBe('1.bias');
    expect(map.mapKey('unet', 'encoder_hid_proj.projection_norm.bias', 'diffusers')).toBeUndefined();
  });

  it('reads a diffusers MoVQ as upstream strictly: reshapes, drops the codebook, lists strangers', async () => {
    const map = await kandinsky3DiffusersKeyMap();
    const shapes: Record<string, number[]> = { 'quantize.embedding.weight': [16, 4] };
    for (const [upstream, diffusers, matrix] of fixture.movq) shapes[diffusers] = matrix ? [8, 8] : [upstream.length];
    const view = mappedCheckpoint(memoryCheckpoint(shapes), map, 'movq', { from: 'diffusers', vars: { levels } });
    expect(new Set(view.keys())).toEqual(new Set(fixture.movq.map(([u]) => u)));
    expect(view.get('decoder.mid.attn_1.q.weight')?.shape).toEqual([8, 8, 1, 1]);
    expect(new TextDecoder().decode(await view.get('decoder.up.0.block.2.conv1.weight')!.read())).toBe(`decoder.up_blocks.${levels - 1}.resnets.2.conv1.weight`);
    const bad = memoryCheckpoint({ ...shapes, 'decoder.up_blocks.0.mystery.weight': [1], 'encoder.extra': [1] });
    expect(() => mappedCheckpoint(bad, map, 'movq', { from: 'diffusers', vars: { levels } })).toThrow(WeightError);
    expect(() => mappedCheckpoint(bad, map, 'movq', { from: 'diffusers', vars: { levels } })).toThrow(/2 diffusers key\(s\)[^]*mystery[^]*encoder\.extra/);
    // A 1×1 conv that is not 1×1 is refused with its key.
    const notOneByOne = memoryCheckpoint({ 'encoder.mid.attn_1.q.weight': [8, 8, 3, 3] });
    expect(() => mappedCheckpoint(notOneByOne, map, 'movq', { from: 'upstream', vars: { levels } })).toThrow(/attn_1\.q\.weight.*1×1/);
  });

  it('rejects malformed maps with the table and rule', () => {
    const rules = (r: unknown) => ({ components: { m: { rules: 't' } }, tables: { t: [r] } });
    expect(() => KeyMap.parse(rules({ upstream: 'a.{i}.', diffusers: 'b.{j}.' }), 'x.json')).toThrow(/tables\.t\[0\].*same rule variables/);
    expect(() => KeyMap.parse(rules({ upstream: 'a.{i+j}.', diffusers: 'b.{i}.' }), 'x.json')).toThrow(FormatError);
    expect(() => KeyMap.parse(rules({ upstream: 'a.', diffusers: 'b.', then: 'nope' }), 'x.json')).toThrow(/unknown table 'nope'/);
    const map = KeyMap.parse({ variables: { n: '' }, ...rules({ upstream: 'up.{i}.w', diffusers: 'down.{n-1-i}.w' }) }, 'x.json');
    expect(map.mapKey('m', 'up.0.w', 'upstream', { n: 4 })?.key).toBe('down.3.w');
    expect(map.mapKey('m', 'down.3.w', 'diffusers', { n: 4 })?.key).toBe('up.0.w');
    expect(map.mapKey('m', 'down.7.w', 'diffusers', { n: 4 })).toBeUndefined();
  });
});
