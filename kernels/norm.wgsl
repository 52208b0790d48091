// Normalisation kernels. `group_norm` normalises one (sample, group) per
// workgroup, with the epilogues the models fuse into it chosen by overrides:
// affine weight/bias, ConditionalGroupNorm's scale/shift, MoVQ's SpatialNorm
// modulation and SiLU. An image too large for one binding is normalised as
// bands of rows in two passes: `group_stats` writes each band's statistics,
// then `group_norm` with BAND_STATS normalises each band with all bands'
// statistics merged (every band merges them in the same order, so all get
// the same mean and variance). `row_norm` normalises one row of [rows, D] per
// workgroup (LayerNorm, or T5's RMS norm). `naive_norm` is the benchmark's
// deliberately simple baseline: one invocation per group, serial loops.
//
// Statistics are f32: each invocation accumulates its strided elements
// shifted by its own first element, turns them into (count, mean, M2) and
// the workgroup merges those with Chan's formula, all relative to the
// block's first element, so |mean| >> std cancels no digits. x is read twice
// (statistics, then output): a group (384 channels / 32 groups × 64×64 =
// 49152 floats) does not fit in workgroup memory.
//
// With VEC4 each invocation moves four elements per step as one vec4: on
// lavapipe that halved the time of scalar accesses (an access costs per
// invocation, nearly whatever its width).

struct GroupParams {
  // Samples in this dispatch, and the first one's index in scale_shift/mod_*
  // (x larger than a storage binding is dispatched in pieces).
  samples: u32,
  first_sample: u32,
  channels: u32,
  groups: u32,
  // Elements per channel (product of the spatial dims).
  hw: u32,
  eps: f32,
  // scale_shift row stride: 2·channels per sample, 0 to broadcast one row.
  ss_stride: u32,
  // SPATIAL: x's width; zq's (mod_y, mod_b) height and width; the nearest
  // upsampling scales zq_height/height and zq_width/width rounded to f32,
  // as torch computes them.
  width: u32,
  zq_height: u32,
  zq_width: u32,
  scale_h: f32,
  scale_w: f32,
  // mod_y/mod_b sample stride: channels·zq_height·zq_width, 0 to broadcast.
  zq_stride: u32,
  // SPATIAL on a band: x's first row in the whole image, whose zq row is
  // nearest(row0 + i) (scale_h is the whole image's).
  row0: u32,
  // Band statistics: this dispatch's band and the number of bands; entry
  // ((sample·groups + group)·bands + band) of stats_out / band_stats.
  band: u32,
  bands: u32,
}

struct RowParams {
  rows: u32,
  d: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> gn: GroupParams;
@group(0) @binding(1) var<uniform> rp: RowParams;
// x as scalars and, with VEC4, as vec4s (the same buffer, read-only twice).
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>;
// Absent optional inputs are bound to a dummy buffer; the override that
// would read them is off, so they are never read.
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
// Row norms with VEC4 read weight and bias [D] as vec4s (the same buffers).
@group(0) @binding(6) var<storage, read> weight4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> bias4: array<vec4<f32>>;
// [samples or 1, 2·channels]: scale (first half) then shift.
@group(0) @binding(8) var<storage, read> scale_shift: array<f32>;
// SpatialNorm's conv_y(zq) and conv_b(zq), [samples or 1, C, zq_h, zq_w].
@group(0) @binding(9) var<storage, read> mod_y: array<f32>;
@group(0) @binding(10) var<storage, read> mod_b: array<f32>;
// Written as vec4s, or one component at a time without VEC4 (a writable
// buffer cannot be bound twice); its binding is rounded up to whole vec4s.
@group(0) @binding(11) var<storage, read_write> out: array<vec4<f32>>;
// Per (sample, group, band): (count, shift, mean − shift, M2), as Moments.
@group(0) @binding(12) var<storage, read_write> stats_out: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> band_stats: array<vec4<f32>>;

override WG: u32 = 64;
// Four elements per step; needs every channel (row) to start at a multiple
// of 4 elements and, with SPATIAL, the width to be one.
override VEC4: bool = false;
override STEP: u32 = select(1u, 4u, VEC4);
override AFFINE: bool = false;
override SCALE_SHIFT: bool = false;
override SPATIAL: bool = false;
override SILU: bool = false;
// group_norm: the statistics are band_stats' merged, not x's own.
override BAND_STATS: bool = false;
// Row and naive kernels: RMS norm (no mean subtraction, no bias).
override RMS: bool = false;

// Loops count in steps of STEP elements: step k is elements k·STEP ..
// k·STEP+STEP-1, in .x only without VEC4 (the other lanes 0).
fn load(k: u32) -> vec4<f32> {
  if (VEC4) { return x4[k]; }
  return vec4(x[k], 0.0, 0.0, 0.0);
}

fn store(k: u32, v: vec4<f32>) {
  if (VEC4) { out[k] = v; } else { out[k / 4u][k % 4u] = v.x; }
}

// Step k of a row norm's weight and bias, as load().
fn row_weight(k: u32) -> vec4<f32> {
  if (VEC4) { return weight4[k]; }
  return vec4(weight[k], 0.0, 0.0, 0.0);
}

fn row_bias(k: u32) -> vec4<f32> {
  if (VEC4) { return bias4[k]; }
  return vec4(bias[k], 0.0, 0.0, 0.0);
}

struct Partial {
  n: f32,
  mean: f32,
  m2: f32,
}

// Chan et al.: (count, mean, M2) of the union of two sets; a.n > 0.
fn merge(a: Partial, b: Partial) -> Partial {
  let n = a.n + b.n;
  let delta = b.mean - a.mean;
  let wb = b.n / n;
  return Partial(n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb);
}

var<workgroup> partials: array<Partial, WG>;

struct Moments {
  // Values are taken relative to shift, the block's first element:
  // mean is the block's mean minus shift.
  shift: f32,
  n: f32,
  mean: f32,
  m2: f32,
}

// Count, mean and M2 of x[base .. base+count) by the whole workgroup. Must be
// called in workgroup-uniform control flow. One invocation merges the WG
// partials in a serial loop: a log2(WG) tree (a barrier inside a loop) cost
// lavapipe 1.5 s more CPU to compile per pipeline (3.6 s instead of 2.2 s
// with every epilogue), and WG merges are few next to a block's elements.
fn workgroup_moments(base: u32, count: u32, lid: u32) -> Moments {
  let shift = x[base];
  // Each invocation also shifts by its own first element: its sums then stay
  // small even where the block's first element is an outlier.
  let own = x[base + min(lid * STEP, count - 1u)];
  let lanes = vec4(1.0, f32(VEC4), f32(VEC4), f32(VEC4));
  let k0 = base / STEP;
  let steps = count / STEP;
  var s = vec4(0.0);
  var q = vec4(0.0);
  for (var k = lid; k < steps; k += WG) {
    let d = (load(k0 + k) - own) * lanes;
    s += d;
    q = fma(d, d, q);
  }
  // Elements this invocation saw.
  let n = f32(select(0u, (steps - lid + WG - 1u) / WG * STEP, lid < steps));
  let inv_n = select(0.0, 1.0 / n, n > 0.0);
  let sum = dot(s, vec4(1.0));
  partials[lid] = Partial(n, (own - shift) + sum * inv_n, max(dot(q, vec4(1.0)) - sum * sum * inv_n, 0.0));
  workgroupBarrier();
  if (lid == 0u) {
    var p = partials[0];
    for (var k = 1u; k < WG; k++) { p = merge(p, partials[k]); }
    partials[0] = p;
  }
  workgroupBarrier();
  let p = partials[0];
  return Moments(shift, p.n, p.mean, p.m2);
}

// The moments of every band of one (sample, group), merged in band order and
// taken relative to band 0's shift (the whole image's first element of the
// group, the one group_norm shifts by unbanded). A band's mean moves to that
// shift by adding the difference of the shifts, a difference of two values
// of the data: no digits of a large common mean are lost.
fn merged_band_moments(first: u32) -> Moments {
  let b0 = band_stats[first];
  var p = Partial(b0.x, b0.z, b0.w);
  for (var k = 1u; k < gn.bands; k++) {
    let b = band_stats[first + k];
    p = merge(p, Partial(b.x, (b.y - b0.y) + b.z, b.w));
  }
  return Moments(b0.y, p.n, p.mean, p.m2);
}

fn silu(v: vec4<f32>) -> vec4<f32> {
  return v / (1.0 + exp(-v));
}

fn flat_workgroup(wid: vec3<u32>, nw: vec3<u32>) -> u32 {
  return wid.y * nw.x + wid.x;
}

// torch's 'nearest': source index floor(i·scale), scale = src/dst in f32.
fn nearest(i: u32, scale: f32, src: u32) -> u32 {
  return min(u32(f32(i) * scale), src - 1u);
}

// The first element of the block of workgroup wg's (sample, group): a
// group's channels are contiguous, one block of channels/groups·hw.
fn group_base(wg: u32) -> u32 {
  let gc = gn.channels / gn.groups;
  return ((wg / gn.groups) * gn.channels + (wg % gn.groups) * gc) * gn.hw;
}

// Where (sample, group) of workgroup wg keeps its band statistics.
fn band_stats_index(wg: u32) -> u32 {
  return (gn.first_sample * gn.groups + wg) * gn.bands;
}

// One band's moments per (sample, group), for group_norm with BAND_STATS.
@compute @workgroup_size(WG)
fn group_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let wg = flat_workgroup(wid, nw);
  if (wg >= gn.samples * gn.groups) { return; }
  let m = workgroup_moments(group_base(wg), gn.channels / gn.groups * gn.hw, lid3.x);
  if (lid3.x == 0u) { stats_out[band_stats_index(wg) + gn.band] = vec4(m.n, m.shift, m.mean, m.m2); }
}

// SPATIAL: zq's columns nearest to x's columns j .. j+STEP-1.
fn zq_columns(j: u32) -> vec4<u32> {
  var c = vec4(0u);
  for (var k = 0u; k < STEP; k++) { c[k] = nearest(j + k, gn.scale_w, gn.zq_width); }
  return c;
}

// SpatialNorm: v·y + b with y, b read in zq's row starting at zq_row, at
// columns cols. Neighbouring pixels that share a zq pixel (upsampling) load
// it once: on lavapipe these scalar loads are the largest part of a step.
fn modulate(v: vec4<f32>, zq_row: u32, cols: vec4<u32>) -> vec4<f32> {
  var y = vec4(0.0);
  var b = vec4(0.0);
  var yk = 0.0;
  var bk = 0.0;
  for (var k = 0u; k < STEP; k++) {
    if (k == 0u || cols[k] != cols[k - 1u]) {
      yk = mod_y[zq_row + cols[k]];
      bk = mod_b[zq_row + cols[k]];
    }
    y[k] = yk;
    b[k] = bk;
  }
  return fma(v, y, b);
}

@compute @workgroup_size(WG)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let wg = flat_workgroup(wid, nw);
  if (wg >= gn.samples * gn.groups) { return; }
  let lid = lid3.x;
  let sample = wg / gn.groups;
  let gc = gn.channels / gn.groups;
  let c0 = (wg % gn.groups) * gc;
  let base = group_base(wg);
  var st: Moments;
  if (BAND_STATS) {
    st = merged_band_moments(band_stats_index(wg));
  } else {
    st = workgroup_moments(base, gc * gn.hw, lid);
  }
  // Biased variance, as torch's norms.
  let rstd = inverseSqrt(st.m2 / st.n + gn.eps);
  // SPATIAL: the row and column of this invocation's first element in a
  // channel; they advance by (di, dj) per loop step, so no division per step,
  // and the zq columns change only if the step is not whole rows (dj != 0).
  let i0 = lid * STEP / gn.width;
  let j0 = lid * STEP % gn.width;
  let di = (WG * STEP) / gn.width;
  let dj = (WG * STEP) % gn.width;
  let cols0 = zq_columns(j0);
  let steps = gn.hw / STEP;
  for (var c = 0u; c < gc; c++) {
    let ch = c0 + c;
    // Everything before the per-element epilogue folds into
    // v = (x − shift)·a + b; x − shift is exact near the mean.
    var a = rstd;
    var b = -st.mean * rstd;
    if (AFFINE) {
      a *= weight[ch];
      b = fma(b, weight[ch], bias[ch]);
    }
    if (SCALE_SHIFT) {
      let row = (gn.first_sample + sample) * gn.ss_stride;
      let scale = scale_shift[row + ch] + 1.0;
      a *= scale;
      b = fma(b, scale, scale_shift[row + gn.channels + ch]);
    }
    let k0 = (base + c * gn.hw) / STEP;
    let zq_at = (gn.first_sample + sample) * gn.zq_stride + ch * gn.zq_height * gn.zq_width;
    var i = i0;
    var j = j0;
    var cols = cols0;
    for (var k = lid; k < steps; k += WG) {
      var v = fma(load(k0 + k) - st.shift, vec4(a), vec4(b));
      if (SPATIAL) {
        v = modulate(v, zq_at + nearest(gn.row0 + i, gn.scale_h, gn.zq_height) * gn.zq_width, cols);
        i += di;
        j += dj;
        if (j >= gn.width) {
          i += 1u;
          j -= gn.width;
        }
        if (dj != 0u) { cols = zq_columns(j); }
      }
      if (SILU) { v = silu(v); }
      store(k0 + k, v);
    }
  }
}

@compute @workgroup_size(WG)
fn row_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = flat_workgroup(wid, nw);
  if (row >= rp.rows) { return; }
  let lid = lid3.x;
  let base = row * rp.d;
  let st = workgroup_moments(base, rp.d, lid);
  let variance = st.m2 / st.n;
  // RMS: mean(x²) = variance + mean², and x is not centred.
  let mean = st.shift + st.mean;
  let rstd = inverseSqrt(select(variance, variance + mean * mean, RMS) + rp.eps);
  let k0 = base / STEP;
  let steps = rp.d / STEP;
  for (var k = lid; k < steps; k += WG) {
    let xe = load(k0 + k);
    var v = select((xe - st.shift) - st.mean, xe, RMS) * rstd * row_weight(k);
    if (!RMS) { v += row_bias(k); }
    store(k0 + k, v);
  }
}

// Baseline for the benchmark: one invocation per (sample, group), two-pass
// statistics and affine output in plain serial loops. Layer/RMS norm run as
// groups = 1, channels = D, hw = 1. Dispatch without VEC4.
@compute @workgroup_size(WG)
fn naive_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
  let g = gid.x;
  if (g >= gn.samples * gn.groups) { return; }
  let count = gn.channels / gn.groups * gn.hw;
  let base = g * count;
  var mean = 0.0;
  if (!RMS) {
    for (var e = 0u; e < count; e++) { mean += x[base + e]; }
    mean /= f32(count);
  }
  var sq = 0.0;
  for (var e = 0u; e < count; e++) {
    let d = x[base + e] - mean;
    sq += d * d;
  }
  let rstd = inverseSqrt(sq / f32(count) + gn.eps);
  for (var e = 0u; e < count; e++) {
    let ch = (base + e) / gn.hw % gn.channels;
    var v = (x[base + e] - mean) * rstd * weight[ch];
    if (!RMS) { v += bias[ch]; }
    store(base + e, vec4(v));
  }
}
