// Fused attention: softmax(scale·q·kᵀ + bias, masked)·v with an online
// softmax, never materialising the score matrix. One invocation owns one
// (problem, head, query) row: its q and running output live in registers
// while it streams the keys.
//
// A "problem" g is one independent attention: a batch row for spatial and
// cross attention, a (video, pixel) pair for temporal attention. Token i of
// problem g for head h, channel d lives at
//   (g / g_inner)·outer + (g % g_inner)·inner + i·tok + h·head_dim + d
// so the same kernel reads [B, L, C] rows and, for temporal attention,
// frames of a pixel straight from (b·t, pixels, C) without a transpose.

struct Params {
  problems: u32,
  heads: u32,
  head_dim: u32,
  lq: u32,
  lk: u32,
  g_inner: u32,
  q_outer: u32,
  q_inner: u32,
  q_tok: u32,
  kv_outer: u32,
  kv_inner: u32,
  kv_tok: u32,
  // k/v (and mask) problems are shared by kv_div consecutive q problems.
  kv_div: u32,
  has_mask: u32,
  has_bias: u32,
  scale: f32,
  // 3-D neighbourhood attention: frame height and width (pixels = g_inner).
  height: u32,
  width: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
// [kv problems, lk] 0/1
@group(0) @binding(4) var<storage, read> mask: array<i32>;
// [heads, lq, lk]
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
// head_dim / 4 upper bound (head_dim <= 256, T5's): private arrays cannot
// be override-sized.
const MAX_D4: u32 = 64u;

const NEG_MAX: f32 = -3.4028234663852886e38;

var<private> qr: array<vec4<f32>, MAX_D4>;
var<private> acc: array<vec4<f32>, MAX_D4>;
var<private> run_max: f32;
var<private> run_sum: f32;

fn flat(wid: vec3<u32>, lid: vec3<u32>, nw: vec3<u32>) -> u32 {
  return (wid.y * nw.x + wid.x) * WG + lid.x;
}

fn load4(buf_is_k: bool, at: u32) -> vec4<f32> {
  if (buf_is_k) {
    return vec4<f32>(k[at], k[at + 1u], k[at + 2u], k[at + 3u]);
  }
  return vec4<f32>(v[at], v[at + 1u], v[at + 2u], v[at + 3u]);
}

fn score(kat: u32) -> f32 {
  var s = vec4<f32>(0.0);
  for (var d = 0u; d < params.head_dim / 4u; d++) {
    s = fma(qr[d], load4(true, kat + 4u * d), s);
  }
  return (s.x + s.y) + (s.z + s.w);
}

// One key/value into the running softmax: rescale when the max grows.
fn accumulate(s: f32, vat: u32) {
  let m = max(run_max, s);
  let correction = exp(run_max - m);
  let p = exp(s - m);
  run_sum = run_sum * correction + p;
  for (var d = 0u; d < params.head_dim / 4u; d++) {
    acc[d] = fma(vec4<f32>(p), load4(false, vat + 4u * d), acc[d] * correction);
  }
  run_max = m;
}

struct Row {
  g: u32,
  h: u32,
  i: u32,
  qat: u32,
  kv_base: u32,
  kv_g: u32,
}

fn row_of(index: u32) -> Row {
  var r: Row;
  r.i = index % params.lq;
  r.h = (index / params.lq) % params.heads;
  r.g = index / (params.lq * params.heads);
  r.qat = (r.g / params.g_inner) * params.q_outer + (r.g % params.g_inner) * params.q_inner + r.i * params.q_tok + r.h * params.head_dim;
  r.kv_g = r.g / params.kv_div;
  r.kv_base = (r.kv_g / params.g_inner) * params.kv_outer + (r.kv_g % params.g_inner) * params.kv_inner + r.h * params.head_dim;
  return r;
}

fn begin(r: Row) {
  for (var d = 0u; d < params.head_dim / 4u; d++) {
    qr[d] = vec4<f32>(q[r.qat + 4u * d], q[r.qat + 4u * d + 1u], q[r.qat + 4u * d + 2u], q[r.qat + 4u * d + 3u]) * params.scale;
    acc[d] = vec4<f32>(0.0);
  }
  run_max = NEG_MAX;
  run_sum = 0.0;
}

fn finish(r: Row) {
  let inv = 1.0 / run_sum;
  for (var d = 0u; d < params.head_dim / 4u; d++) {
    let o = acc[d] * inv;
    let at = r.qat + 4u * d;
    out[at] = o.x;
    out[at + 1u] = o.y;
    out[at + 2u] = o.z;
    out[at + 3u] = o.w;
  }
}

// Spatial, cross, temporal and T5 attention: every key of the problem.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let index = flat(wid, lid, nw);
  if (index >= params.problems * params.heads * params.lq) {
    return;
  }
  let r = row_of(index);
  begin(r);
  for (var j = 0u; j < params.lk; j++) {
    let kat = r.kv_base + j * params.kv_tok;
    var s = score(kat);
    if (params.has_bias != 0u) {
      s += bias[(r.h * params.lq + r.i) * params.lk + j];
    }
    // Masked keys score the most negative f32, as upstream's masked_fill.
    if (params.has_mask != 0u && mask[r.kv_g * params.lk + j] == 0) {
      s = NEG_MAX;
    }
    accumulate(s, kat);
  }
  finish(r);
}

// 3-D temporal attention: the query at frame i, pixel (y, x) attends to every
// frame and the 3×3 neighbourhood around (y, x) inside the frame.
@compute @workgroup_size(WG)
fn neighbourhood(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let index = flat(wid, lid, nw);
  if (index >= params.problems * params.heads * params.lq) {
    return;
  }
  let r = row_of(index);
  let pixel = r.g % params.g_inner;
  let y = i32(pixel / params.width);
  let x = i32(pixel % params.width);
  // The key base of pixel 0 of this video; neighbours offset by inner.
  let video_base = r.kv_base - pixel * params.kv_inner;
  begin(r);
  for (var j = 0u; j < params.lk; j++) {
    for (var dy = -1; dy <= 1; dy++) {
      for (var dx = -1; dx <= 1; dx++) {
        let ny = y + dy;
        let nx = x + dx;
        if (ny < 0 || nx < 0 || ny >= i32(params.height) || nx >= i32(params.width)) {
          continue;
        }
        let kat = video_base + (u32(ny) * params.width + u32(nx)) * params.kv_inner + j * params.kv_tok;
        accumulate(score(kat), kat);
      }
    }
  }
  finish(r);
}
