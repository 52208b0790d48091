// Banded activations: the decoder's high-resolution levels hold an
// activation [N, C, H, W] that is larger than one storage binding (lavapipe:
// 128 MiB; a 512×512 frame of the real image MoVQ reaches 512 MiB) as
// horizontal bands, tensors [N, C, rows_b, W] whose rows make up H in order.
// Tensors split only along dim 0, and one frame is one dim-0 row, so bands
// of rows are what lets one frame exceed a binding.
//
// Every op of those levels is local in H except the norms: a 3×3 conv's
// output row needs one input row on each side (its halo), which each band
// gathers from its neighbours; 1×1 convs, elementwise ops, temporal convs
// over frames and nearest upsampling stay inside a band; GroupNorm's
// statistics are the whole image's, taken from every band first
// (groupNormBandStats). The result is the unbanded decode's, up to f32
// summation order in the norms. Attention is global: levels with attention
// are never banded (decodePlan refuses a size where they would need to be).
import { DeviceLimitError, ShapeError, formatBytes } from '../../errors.ts';
import { concat, slice } from '../../ops/layout.ts';
import { tidy } from '../../tensor/scope.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { MoVQConfig } from './config.ts';
import { decoderLevels } from './cost.ts';

/**
 * An activation as bands of rows (dim 2), top to bottom; one band is the
 * whole tensor. A plain array, so that tidy() keeps the bands a function
 * returns.
 */
export type Bands = Tensor[];

/** Rows of each band. */
export function bandRows(bands: Bands): number[] {
  return bands.map((b) => b.shape[2]);
}

/** The first row of each band. */
export function bandStarts(rows: readonly number[]): number[] {
  let at = 0;
  return rows.map((r) => {
    const s = at;
    at += r;
    return s;
  });
}

/**
 * Row counts of as few bands as keep each band, with `halo` more rows on
 * each side, within `maxBytes` at `rowBytes` a row; sizes differ by at most
 * one row (the larger first). One band when the whole image fits.
 */
export function planBands(height: number, rowBytes: number, maxBytes: number, halo: number, what: string): number[] {
  if (height * rowBytes <= maxBytes) return [height];
  const maxRows = Math.floor(maxBytes / rowBytes) - 2 * halo;
  if (maxRows < 1) {
    throw new DeviceLimitError('maxStorageBufferBindingSize', (1 + 2 * halo) * rowBytes, maxBytes, `${what}: a band of one row and ${halo} halo row(s) on each side`);
  }
  const count = Math.ceil(height / maxRows);
  const base = Math.floor(height / count);
  return Array.from({ length: count }, (_, b) => base + (b < height % count ? 1 : 0));
}

/** Rows [lo, hi) of a banded image as one tensor: a view of a band that is exactly those rows, else a copy. */
function gatherRows(bands: Bands, lo: number, hi: number): Tensor {
  const starts = bandStarts(bandRows(bands));
  const pieces: Tensor[] = [];
  bands.forEach((b, i) => {
    const s = Math.max(lo, starts[i]);
    const e = Math.min(hi, starts[i] + b.shape[2]);
    if (e <= s) return;
    // A view keeps the band's storage alive on its own: whoever disposes the band does not free it.
    pieces.push(s === starts[i] && e === starts[i] + b.shape[2] ? b.reshape(b.shape) : slice(b, 2, s - starts[i], e - s));
  });
  return pieces.length === 1 ? pieces[0] : concat(pieces, 2);
}

/**
 * Bands of an image of `scale`·H rows with the row counts `outRows`, from
 * the bands of an H-row image: output band [s, e) is rows [s, e) of
 * f(window), where window is the input rows under output rows
 * [s − halo, e + halo) (clipped to the image). f must map r rows to
 * scale·r rows, output row j depending on output rows j ± halo only
 * (a 'same'-padded conv after a nearest upsampling by `scale`), so that
 * rows s..e−1 see exactly what they would in the whole image.
 *
 * freeInput: the input is an intermediate nobody reads after this, so each
 * input band is disposed once no later window reads it; the input and the
 * output then hold little more than the larger of the two at any time.
 */
export function remapBands(input: Bands, outRows: readonly number[], scale: number, halo: number, f: (window: Tensor) => Tensor, options: { freeInput?: boolean } = {}): Bands {
  const height = scale * input.reduce((n, b) => n + b.shape[2], 0);
  const starts = bandStarts(outRows);
  if (starts.length === 0 || starts[starts.length - 1] + outRows[outRows.length - 1] !== height) {
    throw new ShapeError('remapBands', `bands of ${outRows.join('+')} rows do not make up ${height} rows`);
  }
  const inEnds = bandStarts(bandRows(input)).map((s, i) => s + input[i].shape[2]);
  // The input rows [lo, hi) under output band b and its halo.
  const windowOf = (b: number) => [Math.floor(Math.max(0, starts[b] - halo) / scale), Math.ceil(Math.min(height, starts[b] + outRows[b] + halo) / scale)];
  return outRows.map((rows, b) => {
    const out = tidy(() => {
      const [lo, hi] = windowOf(b);
      const o = f(gatherRows(input, lo, hi));
      const offset = starts[b] - scale * lo;
      return offset === 0 && o.shape[2] === rows ? o : slice(o, 2, offset, rows);
    });
    if (options.freeInput) {
      const nextLo = b + 1 < outRows.length ? windowOf(b + 1)[0] : Infinity;
      input.forEach((t, i) => inEnds[i] <= nextLo && t.dispose());
    }
    return out;
  });
}

/** f on each band (an op that keeps rows independent), with the band's first row. */
export function mapBands(bands: Bands, f: (band: Tensor, firstRow: number) => Tensor): Bands {
  const starts = bandStarts(bandRows(bands));
  return bands.map((b, i) => tidy(() => f(b, starts[i])));
}

/** f on matching bands of two activations with the same rows. */
export function zipBands(a: Bands, b: Bands, f: (a: Tensor, b: Tensor) => Tensor): Bands {
  return a.map((t, i) => tidy(() => f(t, b[i])));
}

/** Replaces bands by f(bands) and disposes those f did not return (next() for bands). */
export function nextBands(bands: Bands, f: (bands: Bands) => Bands): Bands {
  const r = f(bands);
  for (const t of bands) if (!r.includes(t)) t.dispose();
  return r;
}

/** The bands as one tensor (the decoder's output, which fits one binding). */
export function joinBands(bands: Bands): Tensor {
  return bands.length === 1 ? bands[0] : concat(bands, 2);
}

/**
 * The band rows of each decoder level of decode(quant [frames, z, h, w]),
 * lowest resolution first, within `maxBytes` a binding; one band where the
 * level fits whole. Throws DeviceLimitError, before anything runs, where a
 * level with attention does not fit whole or a band of one row does not fit.
 */
export function decodeBands(c: MoVQConfig, frames: number, h: number, w: number, maxBytes: number): number[][] {
  return decoderLevels(c, frames, h, w).map((l) => {
    const bytes = l.height * l.rowBytes;
    if (l.whole && bytes > maxBytes) {
      throw new DeviceLimitError('maxStorageBufferBindingSize', bytes, maxBytes, `${l.where}: the level has attention, which needs it whole (${formatBytes(bytes)}); decode a smaller size`);
    }
    return planBands(l.height, l.rowBytes, maxBytes, l.halo, l.where);
  });
}
