// Layout and reduction kernels: ops that move, gather or reduce data.
//
// `gather` is the one data-movement kernel: it walks an iteration shape of up
// to 8 dims and copies src[src_offset + Σ c_d·src_stride_d] to
// dst[dst_offset + Σ o_d·dst_stride_d], where o is the multi-index and c the
// source coordinate of o. Strides of 0 broadcast (tile, repeat), permuted
// strides transpose, offsets slice and concatenate, c_d = o_d − lo_d with a
// bounds check pads, and NEAREST maps c_d = floor(o_d·scale_d). Elements are
// moved as u32 words, so every 4-byte dtype (f32, i32, u32) is served.
//
// Per-dim values travel as two vec4s (dims 0-3, 4-7; dim 0 outermost): the
// uniform reflection packs scalars and vectors, not arrays.

override WG: u32 = 256;
// gather: nearest-resize source coordinates (floor(o·scale)) instead of o − lo.
override NEAREST: bool = false;
// embedding: the table holds packed f16 pairs instead of f32 words.
override W_F16: bool = false;
// sinusoidal: positions are i32 instead of f32.
override POS_I32: bool = false;

const FLT_MAX: f32 = 3.40282346638528859812e+38;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nw: vec3<u32>) -> u32 {
  return (wid.y * nw.x + wid.x) * WG + lid.x;
}

fn dim_u(a: vec4<u32>, b: vec4<u32>, d: u32) -> u32 {
  if (d < 4u) { return a[d]; }
  return b[d - 4u];
}

fn dim_i(a: vec4<i32>, b: vec4<i32>, d: u32) -> i32 {
  if (d < 4u) { return a[d]; }
  return b[d - 4u];
}

fn dim_f(a: vec4<f32>, b: vec4<f32>, d: u32) -> f32 {
  if (d < 4u) { return a[d]; }
  return b[d - 4u];
}

struct GatherParams {
  count: u32,
  rank: u32,
  src_offset: u32,
  dst_offset: u32,
  // Bit pattern written where the source coordinate falls outside src_shape.
  fill: u32,
  shape0: vec4<u32>,
  shape1: vec4<u32>,
  src_shape0: vec4<u32>,
  src_shape1: vec4<u32>,
  src_stride0: vec4<u32>,
  src_stride1: vec4<u32>,
  dst_stride0: vec4<u32>,
  dst_stride1: vec4<u32>,
  lo0: vec4<i32>,
  lo1: vec4<i32>,
  scale0: vec4<f32>,
  scale1: vec4<f32>,
}

@group(0) @binding(0) var<uniform> gather_params: GatherParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let p = gather_params;
  let i = flat_index(wid, lid, nw);
  if (i >= p.count) { return; }
  var rem = i;
  var s = p.src_offset;
  var t = p.dst_offset;
  var inside = true;
  for (var d = p.rank; d > 0u; d--) {
    let k = d - 1u;
    let n = dim_u(p.shape0, p.shape1, k);
    let o = rem % n;
    rem = rem / n;
    let bound = dim_u(p.src_shape0, p.src_shape1, k);
    var c: u32;
    if (NEAREST) {
      // torch's nearest: identity where in = out, else min(floor(f32(o)·scale),
      // in − 1) with scale = f32(in/out).
      c = o;
      if (bound != n) { c = min(u32(floor(f32(o) * dim_f(p.scale0, p.scale1, k))), bound - 1u); }
    } else {
      // A negative coordinate wraps to a huge u32 and fails the bound check.
      c = u32(i32(o) - dim_i(p.lo0, p.lo1, k));
      inside = inside && c < bound;
    }
    s += c * dim_u(p.src_stride0, p.src_stride1, k);
    t += o * dim_u(p.dst_stride0, p.dst_stride1, k);
  }
  if (inside) {
    dst[t] = src[s];
  } else {
    dst[t] = p.fill;
  }
}

// Rows to reduce: element k of row r = (o, j) is x[o·len·inner + k·inner + j],
// r = o·inner + j, so `inner` = 1 reduces the last dim and larger values any
// other dim without a transpose. One workgroup per row.
struct RowParams {
  rows: u32,
  len: u32,
  inner: u32,
}

@group(0) @binding(3) var<uniform> row_params: RowParams;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> scratch: array<f32, WG>;

// Tree reduction (max or sum) over the workgroup; WG must be a power of two.
// Every invocation gets the result.
fn workgroup_reduce(v: f32, lid: u32, take_max: bool) -> f32 {
  scratch[lid] = v;
  workgroupBarrier();
  for (var width = WG / 2u; width > 0u; width /= 2u) {
    if (lid < width) {
      let a = scratch[lid];
      let b = scratch[lid + width];
      scratch[lid] = select(a + b, max(a, b), take_max);
    }
    workgroupBarrier();
  }
  let r = scratch[0];
  // The next reduction overwrites scratch: everyone must have read it first.
  workgroupBarrier();
  return r;
}

fn row_base(row: u32) -> u32 {
  let p = row_params;
  return (row / p.inner) * p.len * p.inner + row % p.inner;
}

// Numerically stable softmax: exp(x − max) / Σ exp(x − max). Keys masked with
// −FLT_MAX get exactly 0 unless the whole row is masked (then uniform, as torch).
@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = wid.y * nw.x + wid.x;
  if (row >= row_params.rows) { return; }
  let base = row_base(row);
  let len = row_params.len;
  let step = row_params.inner;
  var m = -FLT_MAX;
  for (var k = lid.x; k < len; k += WG) { m = max(m, x[base + k * step]); }
  m = workgroup_reduce(m, lid.x, true);
  var sum = 0.0;
  for (var k = lid.x; k < len; k += WG) { sum += exp(x[base + k * step] - m); }
  sum = workgroup_reduce(sum, lid.x, false);
  for (var k = lid.x; k < len; k += WG) { y[base + k * step] = exp(x[base + k * step] - m) / sum; }
}

// Mean over each row; the output is the rows in order (the reduced shape).
@compute @workgroup_size(WG)
fn mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let row = wid.y * nw.x + wid.x;
  if (row >= row_params.rows) { return; }
  let base = row_base(row);
  var sum = 0.0;
  for (var k = lid.x; k < row_params.len; k += WG) { sum += x[base + k * row_params.inner]; }
  sum = workgroup_reduce(sum, lid.x, false);
  if (lid.x == 0u) { y[row] = sum / f32(row_params.len); }
}

// Embedding gather over one part of a table split into buffers along the
// vocabulary: this dispatch writes the outputs whose (clamped) id falls in
// rows [row_start, row_start + rows) of the whole table.
struct EmbedParams {
  count: u32,
  dim: u32,
  vocab: u32,
  row_start: u32,
  rows: u32,
}

@group(0) @binding(6) var<uniform> embed_params: EmbedParams;
@group(0) @binding(7) var<storage, read> ids: array<i32>;
@group(0) @binding(8) var<storage, read> table: array<u32>;
@group(0) @binding(9) var<storage, read_write> out: array<f32>;

fn table_value(e: u32) -> f32 {
  if (W_F16) {
    let pair = unpack2x16float(table[e >> 1u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
  }
  return bitcast<f32>(table[e]);
}

@compute @workgroup_size(WG)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let p = embed_params;
  let i = flat_index(wid, lid, nw);
  if (i >= p.count) { return; }
  // Clamped so that a bad id on the device never reads outside the table;
  // host ids are validated by the wrapper.
  let id = u32(clamp(ids[i / p.dim], 0, i32(p.vocab) - 1));
  if (id < p.row_start || id >= p.row_start + p.rows) { return; }
  out[i] = table_value((id - p.row_start) * p.dim + i % p.dim);
}

// Sinusoidal position embedding [sin(x·f), cos(x·f)]. The frequencies come
// from the host (correctly rounded f32; torch's f32 exp is within 1 ulp)
// because arguments up to ~10³ rad amplify a frequency error of a few ulp
// (WGSL's exp allows 3 + 2|x| ulp) into ~10⁻⁴ of output error. sin and cos are our own
// (cephes sinf/cosf): WGSL bounds sin/cos only on [−π, π].
struct SinParams {
  count: u32,
  half_dim: u32,
}

@group(0) @binding(10) var<uniform> sin_params: SinParams;
@group(0) @binding(11) var<storage, read> positions: array<u32>;
@group(0) @binding(12) var<storage, read> freqs: array<f32>;

// sin(a + shift·π/2) for a ≥ 0: Cody-Waite reduction to [−π/4, π/4] with π/4
// split in three parts (exact products for a < 8192) and cephes' minimax
// polynomials, ~1 ulp like torch's f32 sin/cos.
fn sin_shifted(a: f32, shift: u32) -> f32 {
  var j = u32(a * 1.27323954473516);
  j += j & 1u;
  let q = f32(j);
  let r = ((a - q * 0.78515625) - q * 2.4187564849853515625e-4) - q * 3.77489497744594108e-8;
  let z = r * r;
  let quadrant = (j / 2u + shift) & 3u;
  var v: f32;
  if ((quadrant & 1u) == 1u) {
    v = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
  } else {
    v = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
  }
  return select(v, -v, quadrant >= 2u);
}

@compute @workgroup_size(WG)
fn sinusoidal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let p = sin_params;
  let i = flat_index(wid, lid, nw);
  if (i >= p.count) { return; }
  let n = i / (2u * p.half_dim);
  let j = i % (2u * p.half_dim);
  let word = positions[n];
  var pos = bitcast<f32>(word);
  if (POS_I32) { pos = f32(bitcast<i32>(word)); }
  // The product is rounded to f32 first, as torch does.
  let arg = pos * freqs[j % p.half_dim];
  if (j < p.half_dim) {
    out[i] = sign(arg) * sin_shifted(abs(arg), 0u);
  } else {
    out[i] = sin_shifted(abs(arg), 1u);
  }
}

// Rows whose mask entry is 0 become `fill`; the rest are copied. A mask entry
// covers `inner` consecutive elements (mask [B, L] over x [B, L, D]: inner D).
struct MaskParams {
  count: u32,
  inner: u32,
  fill: u32,
}

@group(0) @binding(13) var<uniform> mask_params: MaskParams;
@group(0) @binding(14) var<storage, read> mask: array<i32>;

@compute @workgroup_size(WG)
fn mask_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let p = mask_params;
  let i = flat_index(wid, lid, nw);
  if (i >= p.count) { return; }
  dst[i] = select(p.fill, src[i], mask[i / p.inner] != 0);
}
