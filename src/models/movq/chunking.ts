// How a long latent video is cut into the pieces the decoder runs on.
//
// 'upstream' (default, spec §1 step 6): upstream's `video.chunk(N // 4)`.
// torch.chunk(n) makes pieces of ceil(N / n) frames and as many as that needs
// (so fewer than n when it does not divide: 57 → 11×5 + 2, 225 → 45×5), each
// decoded as its own video by the temporal decoder.
//
// 'overlap' (ours): windows of `chunkFrames` frames that overlap by `overlap`
// frames, cross-faded. The temporal decoder zero-pads its 3×3×3 convs and
// restarts its temporal attention (and quirk 1's frame 0) at every window
// edge, so the frames next to an edge are the least like a whole-video decode
// and consecutive windows disagree there: upstream's chunking shows this as a
// jump at every chunk border. Here every frame in an overlap is decoded by
// both windows and blended with weights that ramp linearly across the
// overlap, so each window's edge frames count least and the hand-over from
// one window to the next is gradual instead of a jump. Carrying context
// frames that are decoded and dropped (no blend) was the other candidate; it
// removes the zero padding next to kept frames but still switches windows in
// one step, which is the jump this mode is for. Cost: chunkFrames /
// (chunkFrames − overlap) times the decode work (5/3 with the defaults).
import { ShapeError } from '../../errors.ts';

export type ChunkMode = 'upstream' | 'overlap';

/** Frames [start, start + length) of the video. */
export interface FrameRange {
  start: number;
  length: number;
}

/**
 * The frames per piece of torch.chunk(N // 4): ceil(N / (N // 4)). Upstream
 * fails for N < 4 (chunk(0)); here that is one piece of N frames.
 */
export function upstreamChunkFrames(n: number): number {
  const pieces = Math.floor(n / 4);
  return pieces === 0 ? n : Math.ceil(n / pieces);
}

/** Consecutive pieces of `size` frames, the last one shorter (torch.chunk / torch.split). */
export function splitFrames(n: number, size: number): FrameRange[] {
  if (!Number.isInteger(n) || n < 0) throw new ShapeError('splitFrames', `bad frame count ${n}`);
  if (!Number.isInteger(size) || size < 1) throw new ShapeError('splitFrames', `chunk size must be an integer >= 1, got ${size}`);
  const out: FrameRange[] = [];
  for (let s = 0; s < n; s += size) out.push({ start: s, length: Math.min(size, n - s) });
  return out;
}

/** One window of the overlap mode and the blend weight of each of its frames. */
export interface Window extends FrameRange {
  weights: number[];
}

/**
 * Windows of `size` frames with stride size − overlap; the last window is
 * moved back to end at the video's last frame (so every window has `size`
 * frames and the last overlap may be wider). A frame's weight in a window
 * ramps as (k + 1)/(overlap + 1) over the window's first `overlap` frames and
 * down symmetrically over its last ones, except at the video's own ends where
 * nothing overlaps; weights are normalised per frame.
 */
export function overlapWindows(n: number, size: number, overlap: number): Window[] {
  if (!Number.isInteger(size) || size < 1) throw new ShapeError('overlapWindows', `window must be an integer >= 1, got ${size}`);
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= size) {
    throw new ShapeError('overlapWindows', `overlap must be an integer in [0, ${size - 1}] for windows of ${size} frames, got ${overlap}`);
  }
  if (n <= size) return n === 0 ? [] : [{ start: 0, length: n, weights: new Array<number>(n).fill(1) }];
  const starts: number[] = [];
  for (let s = 0; ; s += size - overlap) {
    if (s + size >= n) {
      starts.push(n - size);
      break;
    }
    starts.push(s);
  }
  const windows = starts.map((start, i) => {
    const weights = Array.from({ length: size }, (_, k) => {
      const rampIn = i === 0 ? 1 : Math.min(1, (k + 1) / (overlap + 1));
      const rampOut = i === starts.length - 1 ? 1 : Math.min(1, (size - k) / (overlap + 1));
      return Math.min(rampIn, rampOut);
    });
    return { start, length: size, weights };
  });
  const total = new Array<number>(n).fill(0);
  for (const w of windows) w.weights.forEach((x, k) => (total[w.start + k] += x));
  for (const w of windows) w.weights = w.weights.map((x, k) => x / total[w.start + k]);
  return windows;
}
