import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzlibSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { planarToRgb8 } from '../../src/video/frames.ts';
import { encodePng } from '../../src/video/png.ts';
import { videoFormat, writeVideo } from '../../src/video/write.ts';

function frame(shade: number, w = 6, h = 4) {
  const planar = new Float32Array(3 * w * h);
  for (let i = 0; i < planar.length; i++) planar[i] = ((i % 7) / 7) * shade;
  return planarToRgb8(planar, w, h);
}

describe('video output', () => {
  it('converts to 8-bit by truncation as ToPILImage does', () => {
    const f = planarToRgb8(Float32Array.from([0.999, 1.5, -0.2]), 1, 1);
    expect([...f.data]).toEqual([254, 255, 0]);
  });

  it('writes a PNG whose pixels decode back exactly', () => {
    const f = frame(1);
    const png = encodePng(f);
    expect([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join('')).toBe('PNG');
    // IDAT is the third chunk: signature(8) + IHDR(25) + IDAT length/type(8)
    const len = new DataView(png.buffer).getUint32(33);
    const raw = unzlibSync(png.subarray(41, 41 + len));
    const stride = 3 * f.width + 1;
    for (let y = 0; y < f.height; y++) expect([...raw.subarray(y * stride + 1, (y + 1) * stride)]).toEqual([...f.data.subarray(y * 3 * f.width, (y + 1) * 3 * f.width)]);
  });

  it('writes gif, animated png and frame folders; never overwrites without force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'video-'));
    const frames = [frame(0.2), frame(0.6), frame(1)];
    await writeVideo(join(dir, 'a.gif'), frames, { fps: 8 });
    expect(readFileSync(join(dir, 'a.gif')).subarray(0, 6).toString()).toBe('GIF89a');
    await writeVideo(join(dir, 'a.png'), frames, { fps: 8 });
    expect(readFileSync(join(dir, 'a.png')).includes(Buffer.from('acTL'))).toBe(true);
    await writeVideo(join(dir, 'frames/'), frames, { fps: 8 });
    expect(readdirSync(join(dir, 'frames'))).toEqual(['frame_0.png', 'frame_1.png', 'frame_2.png']);
    writeFileSync(join(dir, 'keep.gif'), 'precious');
    await expect(writeVideo(join(dir, 'keep.gif'), frames, { fps: 8 })).rejects.toThrow(/exists; pass --force/);
    expect(readFileSync(join(dir, 'keep.gif'), 'utf8')).toBe('precious');
    await writeVideo(join(dir, 'keep.gif'), frames, { fps: 8, force: true });
    expect(readFileSync(join(dir, 'keep.gif')).subarray(0, 3).toString()).toBe('GIF');
    expect(readdirSync(dir).filter((n) => n.includes('partial'))).toEqual([]);
    expect(() => videoFormat('x.avi')).toThrow(/unsupported output format/);
  });

  // .ci/run installs ffmpeg, so CI checks the files; without it, the error.
  const hasFfmpeg = spawnSync('ffmpeg', ['-version']).status === 0;

  it.each(['mp4', 'webp'] as const)('writes .%s through ffmpeg (or says clearly that it needs ffmpeg)', async (ext) => {
    const dir = mkdtempSync(join(tmpdir(), 'video-'));
    const frames = [frame(0.2, 64, 64), frame(0.6, 64, 64), frame(1, 64, 64)];
    const out = join(dir, `a.${ext}`);
    if (!hasFfmpeg) {
      await expect(writeVideo(out, frames, { fps: 8 })).rejects.toThrow(`.${ext} needs ffmpeg on PATH (apt-get install ffmpeg)`);
      expect(readdirSync(dir)).toEqual([]);
      return;
    }
    await writeVideo(out, frames, { fps: 8 });
    expect(readdirSync(dir)).toEqual([`a.${ext}`]);
    const bytes = readFileSync(out);
    if (ext === 'mp4') {
      const probe = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', out], { encoding: 'utf8' });
      expect(JSON.parse(probe.stdout).streams[0]).toMatchObject({ codec_name: 'h264', width: 64, height: 64, nb_read_frames: '3' });
      return;
    }
    // ffprobe does not read animated WebP: RIFF/WEBP, the VP8X canvas (24-bit
    // width − 1, height − 1) and one ANMF chunk per frame.
    expect([bytes.subarray(0, 4).toString(), bytes.subarray(8, 16).toString()]).toEqual(['RIFF', 'WEBPVP8X']);
    expect([bytes.readUIntLE(24, 3) + 1, bytes.readUIntLE(27, 3) + 1]).toEqual([64, 64]);
    expect(bytes.toString('latin1').split('ANMF').length - 1).toBe(3);
  });

  it('a failing ffmpeg leaves no file under the output name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'video-'));
    const path = process.env.PATH;
    process.env.PATH = dir;
    try {
      await expect(writeVideo(join(dir, 'a.mp4'), [frame(1, 64, 64)], { fps: 8 })).rejects.toThrow(/needs ffmpeg on PATH/);
    } finally {
      process.env.PATH = path;
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
