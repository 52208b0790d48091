// PNG and animated PNG (APNG) encoders: 8-bit RGB, zlib through fflate.
import { zlibSync } from 'fflate';
import { crc32 } from '../io/zip.ts';
import type { RgbFrame } from './frames.ts';

function u32(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => v.setUint32(4 * i, x >>> 0));
  return out;
}

function chunk(type: string, body: Uint8Array): Uint8Array[] {
  const t = new TextEncoder().encode(type);
  return [u32(body.length), t, body, u32(crc32(body, crc32(t)))];
}

/** Filter type 0 per scanline, then zlib. */
function compressFrame(f: RgbFrame): Uint8Array {
  const stride = 3 * f.width;
  const raw = new Uint8Array((stride + 1) * f.height);
  for (let y = 0; y < f.height; y++) raw.set(f.data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return zlibSync(raw, { level: 6 });
}

function header(width: number, height: number): Uint8Array[] {
  const ihdr = new Uint8Array(13);
  ihdr.set(u32(width, height));
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour RGB, deflate, filter 0, no interlace
  return [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunk('IHDR', ihdr)];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function encodePng(f: RgbFrame): Uint8Array {
  return concat([...header(f.width, f.height), ...chunk('IDAT', compressFrame(f)), ...chunk('IEND', new Uint8Array(0))]);
}

/** An APNG that loops forever at `fps`; viewers without APNG show frame 0. */
export function encodeApng(frames: readonly RgbFrame[], fps: number): Uint8Array {
  if (frames.length === 0) throw new RangeError('encodeApng: no frames');
  const { width, height } = frames[0];
  const parts = [...header(width, height), ...chunk('acTL', u32(frames.length, 0))];
  let seq = 0;
  const delay = new Uint8Array(4);
  new DataView(delay.buffer).setUint16(0, 1);
  new DataView(delay.buffer).setUint16(2, Math.round(fps));
  frames.forEach((f, i) => {
    if (f.width !== width || f.height !== height) throw new RangeError('encodeApng: frames differ in size');
    const fctl = new Uint8Array(26);
    fctl.set(u32(seq++, width, height, 0, 0));
    fctl.set(delay, 20);
    fctl.set([0, 0], 24); // dispose none, blend source
    parts.push(...chunk('fcTL', fctl));
    const data = compressFrame(f);
    if (i === 0) parts.push(...chunk('IDAT', data));
    else parts.push(...chunk('fdAT', concat([u32(seq++), data])));
  });
  parts.push(...chunk('IEND', new Uint8Array(0)));
  return concat(parts);
}
