// Animated GIF through gifenc: one 256-colour palette per frame.
import * as gifenc from 'gifenc';
import type { RgbFrame } from './frames.ts';

// gifenc ships ESM (used by bundlers) and CJS without detectable named
// exports (what Node loads): take the functions from whichever arrived.
const { GIFEncoder, applyPalette, quantize } = ('GIFEncoder' in gifenc ? gifenc : (gifenc as unknown as { default: typeof gifenc }).default) as typeof gifenc;

export function encodeGif(frames: readonly RgbFrame[], fps: number): Uint8Array {
  if (frames.length === 0) throw new RangeError('encodeGif: no frames');
  const gif = GIFEncoder();
  const delay = Math.round(1000 / fps);
  for (const f of frames) {
    const rgba = new Uint8Array(f.width * f.height * 4);
    for (let i = 0; i < f.width * f.height; i++) {
      rgba[4 * i] = f.data[3 * i];
      rgba[4 * i + 1] = f.data[3 * i + 1];
      rgba[4 * i + 2] = f.data[3 * i + 2];
      rgba[4 * i + 3] = 255;
    }
    const palette = quantize(rgba, 256, { format: 'rgb444' });
    gif.writeFrame(applyPalette(rgba, palette, 'rgb444'), f.width, f.height, { palette, delay, repeat: 0 });
  }
  gif.finish();
  return gif.bytes();
}
