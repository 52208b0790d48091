import { describe, expect, it } from 'vitest';
import { gaussianNoise, philox4x32 } from '../../src/diffusion/noise.ts';

describe('noise', () => {
  it('philox4x32-10 matches the Random123 known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
  });

  it('is deterministic per (seed, stream) and standard normal', () => {
    const a = gaussianNoise(42, 0, 200_001);
    expect(gaussianNoise(42, 0, 200_001)).toEqual(a);
    expect(gaussianNoise(42, 1, 10)).not.toEqual(a.subarray(0, 10));
    expect(gaussianNoise(43, 0, 10)).not.toEqual(a.subarray(0, 10));
    expect(gaussianNoise(42, 0, 7)).toEqual(a.subarray(0, 7));
    let mean = 0;
    let sq = 0;
    for (const v of a) {
      mean += v;
      sq += v * v;
    }
    mean /= a.length;
    const std = Math.sqrt(sq / a.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(std - 1)).toBeLessThan(0.01);
    expect(a.every(Number.isFinite)).toBe(true);
  });
});
