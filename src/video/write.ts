// Writes frames as a video file chosen by the output's extension: .gif, .png
// (animated PNG), .mp4 (H.264) and .webp (animated, lossless) through a
// system ffmpeg, or a folder of PNG
// frames (a path ending in '/' or without an extension). The file is written
// under a temporary name and renamed when complete, so an interrupted run
// never leaves a truncated video under the requested name; an existing output
// is only replaced with `force`.
import { KandinskyError, UsageError } from '../errors.ts';
import type { RgbFrame } from './frames.ts';
import { encodeGif } from './gif.ts';
import { encodeApng, encodePng } from './png.ts';

export type VideoFormat = 'gif' | 'png' | 'mp4' | 'webp' | 'frames';

export function videoFormat(path: string): VideoFormat {
  if (path.endsWith('/')) return 'frames';
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase();
  if (!ext) return 'frames';
  if (ext === 'gif' || ext === 'png' || ext === 'mp4' || ext === 'webp') return ext;
  if (ext === 'apng') return 'png';
  throw new UsageError(`unsupported output format '.${ext}' (use .mp4, .webp, .gif, .png (animated) or a folder for PNG frames)`);
}

export interface WriteOptions {
  fps: number;
  force?: boolean;
}

async function exists(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  return fs.stat(path).then(
    () => true,
    () => false,
  );
}

/** Refuses to replace an existing output unless forced (checked before any work). */
export async function checkOutputPath(path: string, force = false): Promise<void> {
  if (!force && (await exists(path.replace(/\/$/, '')))) throw new UsageError(`${path} exists; pass --force to replace it`);
}

/** ffmpeg's output options per format: H.264 in yuv420p (what players expect), lossless animated WebP that loops. */
const FFMPEG_OUTPUT: Record<'mp4' | 'webp', string[]> = {
  mp4: ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '18', '-f', 'mp4'],
  webp: ['-c:v', 'libwebp_anim', '-lossless', '1', '-loop', '0', '-f', 'webp'],
};

async function encodeWithFfmpeg(format: 'mp4' | 'webp', frames: readonly RgbFrame[], fps: number, tmp: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const { width, height } = frames[0];
  await new Promise<void>((resolve, reject) => {
    const ff = spawn(
      'ffmpeg',
      ['-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', '-', ...FFMPEG_OUTPUT[format], tmp],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let err = '';
    ff.stderr.on('data', (d) => (err += d));
    ff.on('error', (e) => reject(new KandinskyError(`.${format} needs ffmpeg on PATH (apt-get install ffmpeg), or write .gif/.png instead: ${e.message}`)));
    ff.on('close', (code) => (code === 0 ? resolve() : reject(new KandinskyError(`ffmpeg failed (${code}): ${err.trim()}`))));
    ff.stdin.on('error', () => {});
    for (const f of frames) ff.stdin.write(f.data);
    ff.stdin.end();
  });
}

/** Writes `frames` to `path` atomically. */
export async function writeVideo(path: string, frames: readonly RgbFrame[], options: WriteOptions): Promise<void> {
  if (frames.length === 0) throw new KandinskyError('no frames to write');
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const format = videoFormat(path);
  const target = path.replace(/\/$/, '');
  await checkOutputPath(target, options.force);
  const tmp = nodePath.join(nodePath.dirname(target), `.${nodePath.basename(target)}.partial-${process.pid}`);
  try {
    if (format === 'frames') {
      await fs.mkdir(tmp, { recursive: true });
      const digits = String(frames.length - 1).length;
      for (let i = 0; i < frames.length; i++) await fs.writeFile(nodePath.join(tmp, `frame_${String(i).padStart(digits, '0')}.png`), encodePng(frames[i]));
    } else if (format === 'gif') {
      await fs.writeFile(tmp, encodeGif(frames, options.fps));
    } else if (format === 'png') {
      await fs.writeFile(tmp, frames.length === 1 ? encodePng(frames[0]) : encodeApng(frames, options.fps));
    } else {
      await encodeWithFfmpeg(format, frames, options.fps, tmp);
    }
    if (options.force) await fs.rm(target, { recursive: true, force: true });
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
