// The download: MP4 through WebCodecs where the browser can encode H.264
// (or VP9, muxed into MP4 the same way), an animated GIF otherwise.
import { ArrayBufferTarget, Muxer } from 'mp4-muxer';
import type { RgbFrame } from '../src/video/frames.ts';
import { encodeGif } from '../src/video/gif.ts';

export interface VideoFile {
  blob: Blob;
  extension: 'mp4' | 'gif';
}

// Codec strings WebCodecs is asked for, first supported wins: H.264
// Constrained Baseline level 4.0 (up to 2048x1024), then VP9 profile 0.
const CODECS = [
  { webcodecs: 'avc1.42e028', muxer: 'avc' },
  { webcodecs: 'vp09.00.40.08', muxer: 'vp9' },
] as const;

export function rgbToRgba(frame: RgbFrame): Uint8ClampedArray<ArrayBuffer> {
  const n = frame.width * frame.height;
  const rgba = new Uint8ClampedArray(4 * n);
  for (let i = 0; i < n; i++) {
    rgba[4 * i] = frame.data[3 * i];
    rgba[4 * i + 1] = frame.data[3 * i + 1];
    rgba[4 * i + 2] = frame.data[3 * i + 2];
    rgba[4 * i + 3] = 255;
  }
  return rgba;
}

async function pickCodec(width: number, height: number, fps: number): Promise<(typeof CODECS)[number] | undefined> {
  if (typeof VideoEncoder === 'undefined') return undefined;
  for (const c of CODECS) {
    const { supported } = await VideoEncoder.isConfigSupported({ codec: c.webcodecs, width, height, framerate: fps, bitrate: bitrate(width, height, fps) });
    if (supported) return c;
  }
  return undefined;
}

// About 0.2 bits a pixel: near-lossless for the small sizes made here.
function bitrate(width: number, height: number, fps: number): number {
  return Math.max(200_000, Math.round(0.2 * width * height * fps));
}

async function encodeMp4(frames: readonly RgbFrame[], fps: number, codec: (typeof CODECS)[number]): Promise<Blob> {
  const { width, height } = frames[0];
  const muxer = new Muxer({ target: new ArrayBufferTarget(), video: { codec: codec.muxer, width, height, frameRate: fps }, fastStart: 'in-memory' });
  let failure: unknown;
  const encoder = new VideoEncoder({
    output: (chunk, meta) => muxer.addVideoChunk(chunk, meta),
    error: (e) => (failure = e),
  });
  encoder.configure({ codec: codec.webcodecs, width, height, framerate: fps, bitrate: bitrate(width, height, fps) });
  const micros = 1e6 / fps;
  frames.forEach((f, i) => {
    const frame = new VideoFrame(rgbToRgba(f), { format: 'RGBA', codedWidth: width, codedHeight: height, timestamp: Math.round(i * micros), duration: Math.round(micros) });
    encoder.encode(frame, { keyFrame: i % Math.max(1, Math.round(2 * fps)) === 0 });
    frame.close();
  });
  await encoder.flush();
  encoder.close();
  if (failure) throw failure;
  muxer.finalize();
  return new Blob([muxer.target.buffer], { type: 'video/mp4' });
}

export async function encodeVideoFile(frames: readonly RgbFrame[], fps: number): Promise<VideoFile> {
  const codec = await pickCodec(frames[0].width, frames[0].height, fps);
  if (codec) return { blob: await encodeMp4(frames, fps, codec), extension: 'mp4' };
  return { blob: new Blob([encodeGif(frames, fps) as Uint8Array<ArrayBuffer>], { type: 'image/gif' }), extension: 'gif' };
}
