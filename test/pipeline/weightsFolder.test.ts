import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.ts';
import { DEMO_CONFIG } from '../../src/pipeline/demoWeights.ts';
import { parseModelConfigs } from '../../src/pipeline/weightsFolder.ts';

describe("a weights folder's config.json", () => {
  it('reads the three model sections', () => {
    const c = parseModelConfigs(JSON.stringify(DEMO_CONFIG), 'w/config.json');
    expect([c.keyframe.num_frames, c.interpolation.interpolation, c.movq.ch]).toEqual([15, true, DEMO_CONFIG.movq.ch]);
  });

  it('names the file and the section for anything else', () => {
    for (const text of ['null', '[]', '7', '{ nope']) expect(() => parseModelConfigs(text, 'w/config.json')).toThrow(FormatError);
    expect(() => parseModelConfigs('null', 'w/config.json')).toThrow(/w\/config\.json: must hold an object/);
    const huge = { ...DEMO_CONFIG, keyframe: { ...DEMO_CONFIG.keyframe, model_channels: 2 ** 40 } };
    expect(() => parseModelConfigs(JSON.stringify(huge), 'w/config.json')).toThrow(/w\/config\.json keyframe: U-Net config: model_channels must be an integer in \[1, 16777216\]/);
    const levels = { ...DEMO_CONFIG, movq: { ...DEMO_CONFIG.movq, ch_mult: Array(40).fill(1) } };
    expect(() => parseModelConfigs(JSON.stringify(levels), 'w/config.json')).toThrow(/w\/config\.json movq: bad MoVQ config:\n {2}"ch_mult" must be a list of at most 16 integers/);
    const blocks = { ...DEMO_CONFIG, movq: { ...DEMO_CONFIG.movq, num_res_blocks: 1e7 } };
    expect(() => parseModelConfigs(JSON.stringify(blocks), 'w/config.json')).toThrow(/"num_res_blocks" must be an integer in \[0, 1024\]/);
  });
});
