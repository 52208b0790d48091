// Seeded Gaussian noise, generated on the host so that a seed gives the same
// numbers on every adapter and runtime. Philox4x32-10 (Salmon et al. 2011) is
// counter-based: value i of stream `stream` depends only on (seed, stream, i),
// so stages draw independent streams without sharing generator state. Each
// counter block gives four uniforms; Box-Muller in f64 turns pairs into normals.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High and low words of the 64-bit product of two u32, exactly, in doubles. */
function mulhilo(a: number, b: number): [number, number] {
  const ah = a >>> 16;
  const al = a & 0xffff;
  const bh = b >>> 16;
  const bl = b & 0xffff;
  const mid = ah * bl + al * bh;
  const hi = ah * bh + Math.floor((mid + (al * bl) / 65536) / 65536);
  return [hi >>> 0, Math.imul(a, b) >>> 0];
}

/** Philox4x32-10 of a 128-bit counter under a 64-bit key. */
export function philox4x32(counter: [number, number, number, number], key: [number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/**
 * `count` standard normals of stream `stream` under `seed`. The seed is split
 * into the key (low and high 32 bits); the counter is (block, stream, 0, 0).
 */
export function gaussianNoise(seed: number, stream: number, count: number): Float32Array {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  const key: [number, number] = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
  const out = new Float32Array(count);
  for (let block = 0, i = 0; i < count; block++) {
    const u = philox4x32([block >>> 0, stream >>> 0, Math.floor(block / 2 ** 32) >>> 0, 0], key);
    for (let j = 0; j < 4 && i < count; j += 2) {
      // (x + 1) / 2^32 keeps u1 in (0, 1], so log(u1) is finite.
      const u1 = (u[j] + 1) / 4294967296;
      const u2 = u[j + 1] / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i++] = r * Math.cos(2 * Math.PI * u2);
      if (i < count) out[i++] = r * Math.sin(2 * Math.PI * u2);
    }
  }
  return out;
}
