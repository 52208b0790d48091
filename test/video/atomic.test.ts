// An encoder that fails halfway must leave nothing under the requested name,
// and an existing file must survive a failed --force run.
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { planarToRgb8 } from '../../src/video/frames.ts';
import { writeVideo } from '../../src/video/write.ts';

const frames = [0.2, 0.8].map((v) => planarToRgb8(new Float32Array(3 * 8 * 8).fill(v), 8, 8));
const path = process.env.PATH;

/** An `ffmpeg` on PATH that writes half a file to its output, then fails. */
function brokenFfmpeg(): void {
  const bin = mkdtempSync(join(tmpdir(), 'ffmpeg-'));
  writeFileSync(join(bin, 'ffmpeg'), '#!/bin/sh\nfor last; do :; done\nprintf "truncated mp4" > "$last"\necho "disk full" >&2\nexit 1\n');
  chmodSync(join(bin, 'ffmpeg'), 0o755);
  process.env.PATH = `${bin}${delimiter}${path}`;
}

afterEach(() => {
  process.env.PATH = path;
});

describe('atomic output', () => {
  it('an encoder failing halfway leaves no file under the requested name', async () => {
    brokenFfmpeg();
    const dir = mkdtempSync(join(tmpdir(), 'video-'));
    await expect(writeVideo(join(dir, 'out.mp4'), frames, { fps: 8 })).rejects.toThrow(/ffmpeg failed \(1\): disk full/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a failed --force run keeps the existing file', async () => {
    brokenFfmpeg();
    const dir = mkdtempSync(join(tmpdir(), 'video-'));
    writeFileSync(join(dir, 'out.mp4'), 'precious');
    await expect(writeVideo(join(dir, 'out.mp4'), frames, { fps: 8, force: true })).rejects.toThrow(/ffmpeg failed/);
    expect(readFileSync(join(dir, 'out.mp4'), 'utf8')).toBe('precious');
    expect(existsSync(join(dir, 'out.mp4'))).toBe(true);
    expect(readdirSync(dir)).toEqual(['out.mp4']);
  });
});
