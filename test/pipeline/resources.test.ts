import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unetParams } from '../../src/cli/params.ts';
import { ResourceError } from '../../src/errors.ts';
import { IMAGE_MOVQ, VIDEO_MOVQ } from '../../src/models/movq/config.ts';
import { FLAN_UL2 } from '../../src/models/t5/config.ts';
import { presetConfig } from '../../src/models/unet/config.ts';
import { winogradWorkingBytes } from '../../src/ops/winograd.ts';
import { generateVideo } from '../../src/pipeline/generate.ts';
import { type ResourceLimits, type RunShape, checkResources, decodeStage, estimateRun } from '../../src/pipeline/resources.ts';

const released = { keyframe: presetConfig('keyframe'), interpolation: presetConfig('interpolation'), movq: IMAGE_MOVQ };
const run = (o: Partial<RunShape> = {}) => estimateRun(released, FLAN_UL2, { width: 512, height: 512, fps: 'medium', dtype: 'f16', ...o });
const GiB = 2 ** 30;
/** lavapipe's binding and buffer limits, and a 16 GiB machine (a software adapter's memory is the host's). */
const lavapipe: ResourceLimits = { maxBinding: 128 * 2 ** 20, maxBuffer: 4 * GiB, deviceBytes: 16 * GiB, hostBytes: 16 * GiB, memorySource: 'test' };
/** A hardware adapter: large bindings, its memory unknown to WebGPU. */
const hardware: ResourceLimits = { maxBinding: 2 * GiB, maxBuffer: 4 * GiB, hostBytes: 16 * GiB, memorySource: 'test' };

/** The Winograd working memory in the decode stage's estimate: U at 1024 channels, a chunk each of V and M. */
const decodeWinograd = winogradWorkingBytes(IMAGE_MOVQ.ch * Math.max(...IMAGE_MOVQ.ch_mult));

describe('resource estimate', () => {
  it('has one entry per stage, the U-Net weights as the params command counts them', () => {
    expect(run({ fps: 'low' }).map((s) => s.stage)).toEqual(['text', 'keyframes', 'decode']);
    expect(run({ fps: 'high' }).map((s) => s.stage)).toEqual(['text', 'keyframes', 'interpolation 1', 'interpolation 2', 'decode']);
    const [, keyframes] = run();
    expect(keyframes.weightBytes).toBe(unetParams('keyframe').f16_bytes);
    expect(run({ dtype: 'f32' })[1].weightBytes).toBe(unetParams('keyframe').f32_bytes);
  });

  it('grows with the frame size and the frame count', () => {
    const small = run();
    const big = run({ width: 1024, height: 1024 });
    // Four times the pixels, four times the activations (less the Winograd working memory, which does not grow).
    for (let i = 1; i < small.length - 1; i++) expect(big[i].activationBytes).toBeGreaterThan(3.8 * small[i].activationBytes);
    expect(big.at(-1)!.activationBytes - decodeWinograd).toBeGreaterThan(3.9 * (small.at(-1)!.activationBytes - decodeWinograd));
    // 57 frames at medium, 225 at high: the decoded frames are held as 8-bit RGB.
    expect(run().at(-1)!.hostBytes).toBeGreaterThanOrEqual(57 * 512 * 512 * 3);
    expect(run({ fps: 'high' }).at(-1)!.hostBytes).toBeGreaterThanOrEqual(225 * 512 * 512 * 3);
  });

  it('accepts what fits and refuses what cannot, with the numbers', () => {
    expect(() => checkResources(run(), hardware, '512x512')).not.toThrow();
    expect(() => checkResources(run({ width: 256, height: 256 }), lavapipe, '256x256')).not.toThrow();
    // The released MoVQ's top level holds [512, 512, 512] f32 per 512x512 frame, more than lavapipe
    // binds; it decodes that level in bands of rows, and its attention level [1024, 64, 64] fits.
    expect(() => checkResources(run(), lavapipe, '512x512')).not.toThrow();
    expect(() => checkResources(run({ fps: 'high' }), lavapipe, '512x512')).not.toThrow();
    const decode512 = run().at(-1)!;
    expect([decode512.rowBytes, decode512.rowWhere]).toEqual([16 * 2 ** 20, "one frame's decoder.up.3 [1024, 64, 64] f32 activation, whole for its attention"]);
    // Its activations are still counted whole (the bands of one activation
    // are its bytes), plus a Winograd conv's working memory at 1024 channels.
    expect(decode512.activationBytes).toBe(2 * 512 * 2 ** 20 + decodeWinograd);
    // The temporal decoder holds its whole chunk in every band: 5 frames' attention level is 80 MiB, 10 frames' too much.
    const video = (chunk: number) => decodeStage(VIDEO_MOVQ, 57, 64, 64, { width: 512, height: 512, dtype: 'f16', decodeChunkFrames: chunk });
    expect(video(5).rowWhere).toBe("the 5-frame chunk's decoder.up.3 [5×1024, 64, 64] f32 activation, whole for its attention");
    expect(() => checkResources([video(5)], lavapipe, '512x512')).not.toThrow();
    expect(() => checkResources([video(10)], lavapipe, '512x512')).toThrow(/decode: the 10-frame chunk's decoder\.up\.3 \[10×1024, 64, 64\] f32 activation, whole for its attention needs 160\.0 MiB/);
    // 2048x2048: the attention level alone is [1024, 256, 256] f32, 256 MiB: no banding helps.
    const decode2048 = decodeStage(IMAGE_MOVQ, 1, 256, 256, { width: 2048, height: 2048, dtype: 'f16' });
    expect(() => checkResources([decode2048], lavapipe, '2048x2048')).toThrow(ResourceError);
    expect(() => checkResources([decode2048], lavapipe, '2048x2048')).toThrow(
      /2048x2048: decode: one frame's decoder\.up\.3 \[1024, 256, 256\] f32 activation, whole for its attention needs 256\.0 MiB, 128\.0 MiB available \(the adapter's maxStorageBufferBindingSize/,
    );
    // One frame's widest activation must fit one binding: rows are all a tensor splits into.
    expect(() => checkResources(run({ width: 8192, height: 8192 }), lavapipe, '8192x8192')).toThrow(ResourceError);
    expect(() => checkResources(run({ width: 8192, height: 8192 }), lavapipe, '8192x8192')).toThrow(
      /8192x8192: keyframes: one frame's down level \d \[\d+, \d+, \d+\] f32 activation needs [\d.]+ GiB, 128\.0 MiB available \(the adapter's maxStorageBufferBindingSize/,
    );
    // Memory: weights and activations against the device's (a software adapter's is the host's).
    const small: ResourceLimits = { ...lavapipe, deviceBytes: 4 * GiB, hostBytes: 4 * GiB };
    expect(() => checkResources(run({ dtype: 'f32', width: 256, height: 256 }), small, '256x256')).toThrow(/256x256: keyframes: weights [\d.]+ GiB \+ activations [\d.]+ MiB needs [\d.]+ GiB, 4\.00 GiB available \(test/);
    // Host memory alone (a hardware adapter, whose memory WebGPU does not tell) still bounds the decoded frames.
    expect(() => checkResources(run({ width: 1024, height: 1024, fps: 'high' }), { ...hardware, hostBytes: 256 * 2 ** 20 }, '1024x1024')).toThrow(/decode: the decoded frames needs [\d.]+ MiB, 256\.0 MiB available/);
  });

  it('refuses a huge --size in well under a second, before any weights are read', async () => {
    // Checkpoints that would fail to parse: reaching them would be a FormatError, not a ResourceError.
    const dir = mkdtempSync(join(tmpdir(), 'weights-'));
    for (const f of ['kandinsky_video.pt', 'kandinsky_video_interpolation.pt', 'movq.pt']) writeFileSync(join(dir, f), 'not a checkpoint');
    mkdirSync(join(dir, 'flan-ul2'));
    writeFileSync(join(dir, 'flan-ul2', 'config.json'), JSON.stringify(FLAN_UL2));
    const t0 = performance.now();
    const e = await generateVideo({ prompt: 'a cat', weights: dir, width: 8192, height: 8192 }).catch((x: unknown) => x);
    const ms = performance.now() - t0;
    expect(e).toBeInstanceOf(ResourceError);
    expect((e as ResourceError).needed).toBeGreaterThan((e as ResourceError).available);
    expect(ms).toBeLessThan(1000);
  });
});
