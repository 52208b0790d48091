// Decoded frames: RGB in [0, 1], channel-planar (C, H, W) as the MoVQ gives
// them, turned into interleaved 8-bit RGB as upstream's ToPILImage does:
// floor(255·p), truncation rather than rounding.

export interface RgbFrame {
  width: number;
  height: number;
  /** Interleaved RGB, 3 bytes per pixel, row-major. */
  data: Uint8Array;
}

export function planarToRgb8(planar: Float32Array, width: number, height: number): RgbFrame {
  const n = width * height;
  if (planar.length !== 3 * n) throw new RangeError(`frame of ${planar.length} values is not 3×${height}×${width}`);
  const data = new Uint8Array(3 * n);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      const p = Math.min(1, Math.max(0, planar[c * n + i]));
      data[3 * i + c] = Math.floor(255 * p);
    }
  }
  return { width, height, data };
}
