// Fused attention: out = softmax(scale·q·kᵀ + bias, masked)·v per head, with
// an online softmax (running max m, running sum l, rescaled accumulator o),
// so the score matrix is never stored. Scores run in log2 units: scale·log2(e)
// is folded into q and the bias, and exp2 replaces exp.
//
// Addressing, in vec4 units (head_dim and every stride are multiples of 4).
// A batch index n splits as (outer, inner) = (n / params.inner, n % params.inner):
//   q/out row (n, token i, head h) at outer·q_outer + inner·q_inner + i·q_token + h·q_head
//   k/v   row (n, token j, head h) the same with the kv strides, for n / kv_div
// Token-major [batch, L, heads·D] is inner = 1; attention across the frames
// of (b·t, pixels, C) is inner = pixels with tokens one frame apart
// (src/ops/attention.ts documents each mapping). With NEIGHBOURHOOD the keys
// of (n, h) are 9 segments of lk tokens: the 3×3 neighbourhood of pixel
// inner = y·width + x, each neighbour over every frame, neighbours outside
// the frame left out.
//
// Masked keys (mask[(n / kv_div)·mask_stride + j] == 0) score -FLT_MAX, as upstream: a
// row whose keys are all masked averages all its values, like torch. The
// bias is bias[(h·lq + i)·lk + j] (T5's relative positions).
//
// Entry points:
//   main   an invocation owns R query rows (rows i0 + r·WG + lane) and streams
//          the keys in blocks of KB: the scores of a block, one softmax
//          rescale, then the values. Where a block's keys come from:
//          SHUFFLE  (CPU adapters; WG = KB = the subgroup size) lane l loads
//                   the rows of key j0 + l and subgroupShuffle, a register
//                   permute, hands them to every lane. On llvmpipe an
//                   invocation is a SIMD lane and a load whose address is not
//                   a compile-time constant costs a scalar load and a branch
//                   per lane, so shared loads, and R rows per lane to use each
//                   loaded row for R·KB queries, pay most.
//          TILE_KV  (GPUs) the workgroup stages the block in workgroup memory.
//          neither  every invocation reads the keys itself.
//   naive  the benchmark baseline: three passes over the keys per query row.
//
// Register tiles. Mesa (llvmpipe) unrolls a loop only when it runs at most 32
// times and is small or indexes an array of exactly that length; an array
// indexed by a loop counter that is not unrolled lives in memory and costs a
// gather or scatter per access. So an invocation holds SUB = 4 sub-rows of
// 16 vec4 (64 dims) for q and for o, and the loops over them run 4 and 16
// times. A query row of head_dim D takes S = ceil(D / 64) consecutive
// sub-rows (its score sums over them), so R ≤ 4 / S and head_dim ≤ 256.
// #if subgroups
enable subgroups;
// #endif

struct Params {
  batch: u32,
  lq: u32,
  lk: u32,
  heads: u32,
  // head_dim / 4 (also the D4 override: loops that must stay loops read this one)
  d4: u32,
  inner: u32,
  q_outer: u32,
  q_inner: u32,
  q_token: u32,
  q_head: u32,
  kv_outer: u32,
  kv_inner: u32,
  kv_token: u32,
  kv_head: u32,
  // k/v (and mask) row n / kv_div serves problem n (one context for many rows)
  kv_div: u32,
  mask_stride: u32,
  width: u32,
  height: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

// head_dim / 4; sub-rows per query row; query rows per invocation (R·S ≤ 4);
// keys per block (≤ 16); workgroup size.
override D4: u32 = 16u;
override S: u32 = 1u;
override R: u32 = 1u;
override KB: u32 = 16u;
override WG: u32 = 64u;
override MASK: bool = false;
override BIAS: bool = false;
override NEIGHBOURHOOD: bool = false;
override SHUFFLE: bool = false;
override TILE_KV: bool = false;
// vec4 per sub-row in use: a head of 16 vec4 or fewer fills one.
override DS: u32 = min(D4, 16u);

const SUB: u32 = 4u;
const SUB4: u32 = 16u;
const MAX_D4: u32 = 64u; // SUB · SUB4
const NEG_MAX: f32 = -3.4028234663852886e38;
const LOG2E: f32 = 1.4426950408889634;

alias SubRow = array<vec4<f32>, SUB4>;
alias Rows = array<SubRow, SUB>;
alias PerRow = array<f32, SUB>;
// A key or value row that this lane loads for the others (SHUFFLE).
alias KeyRow = array<vec4<f32>, MAX_D4>;
// The scores of one query row for a block: key j at component j % 4 of vector j / 4.
alias Scores = array<vec4<f32>, 4>;

// KB keys and values staged per block (TILE_KV; the wrapper sets 1 otherwise).
override TILE_KEYS: u32 = 1u;
var<workgroup> k_tile: array<vec4<f32>, TILE_KEYS * D4>;
var<workgroup> v_tile: array<vec4<f32>, TILE_KEYS * D4>;

// The online-softmax state of an invocation's query rows.
struct State {
  q: Rows,
  o: Rows,
  m: PerRow,
  l: PerRow,
}

// The keys of one block: tokens j0 .. j0 + len of a segment starting at kv_base.
struct Block {
  kv_base: u32,
  j0: u32,
  len: u32,
}

// The problem (batch n, head h) a workgroup serves and its first query row.
struct Problem {
  n: u32,
  h: u32,
  i0: u32,
}

fn q_row_base(p: Problem, i: u32) -> u32 {
  return (p.n / params.inner) * params.q_outer + (p.n % params.inner) * params.q_inner + i * params.q_token + p.h * params.q_head;
}

// Key segment c of a problem: x = the index of its token 0, y = 1 if it exists.
fn segment(p: Problem, c: u32) -> vec2<u32> {
  let n = p.n / params.kv_div;
  let base = (n / params.inner) * params.kv_outer + p.h * params.kv_head;
  let pixel = n % params.inner;
  if (!NEIGHBOURHOOD) { return vec2<u32>(base + pixel * params.kv_inner, 1u); }
  let ny = i32(pixel / params.width) + i32(c / 3u) - 1;
  let nx = i32(pixel % params.width) + i32(c % 3u) - 1;
  let inside = ny >= 0 && ny < i32(params.height) && nx >= 0 && nx < i32(params.width);
  return vec2<u32>(base + u32(ny * i32(params.width) + nx) * params.kv_inner, u32(inside));
}

fn mask_row(p: Problem) -> u32 {
  return (p.n / params.kv_div) * params.mask_stride;
}

fn segments() -> u32 {
  return select(1u, 9u, NEIGHBOURHOOD);
}

// Score of key j (of a segment of lk keys) for query row i before the
// softmax: masked keys -FLT_MAX, the bias added (log2 units).
fn adjust(p: Problem, i: u32, j: u32, kept: bool, x: f32) -> f32 {
  var y = x;
  if (BIAS) { y += LOG2E * bias[(p.h * params.lq + i) * params.lk + j]; }
  return select(NEG_MAX, y, kept);
}

// ---- main ------------------------------------------------------------------

// Query row r of the invocation, clamped into range.
fn q_index(p: Problem, r: u32, lane: u32) -> u32 {
  return min(p.i0 + r * WG + lane, params.lq - 1u);
}

// The head vec4 that vec4 d of sub-row u holds (the last one past D4: its q is
// zero there and its output is never stored).
fn head_vec4(u: u32, d: u32) -> u32 {
  return min((u % S) * SUB4 + d, D4 - 1u);
}

// Head vec4 d of key j0 + j of the block (TILE_KV: staged; SHUFFLE: lane j's row).
fn key_at(kr: ptr<function, KeyRow>, b: Block, j: u32, d: u32) -> vec4<f32> {
// #if subgroups
  if (SHUFFLE) { return subgroupShuffle((*kr)[d], j); }
// #endif
  if (TILE_KV) { return k_tile[j * D4 + d]; }
  return k[b.kv_base + (b.j0 + j) * params.kv_token + d];
}

fn value_at(vr: ptr<function, KeyRow>, b: Block, j: u32, d: u32) -> vec4<f32> {
// #if subgroups
  if (SHUFFLE) { return subgroupShuffle((*vr)[d], j); }
// #endif
  if (TILE_KV) { return v_tile[j * D4 + d]; }
  return v[b.kv_base + (b.j0 + j) * params.kv_token + d];
}

fn set_score(s: ptr<function, Scores>, j: u32, x: f32) {
  for (var c = 0u; c < 4u; c++) {
    (*s)[c] = select((*s)[c], vec4<f32>(x), vec4<u32>(j) == vec4<u32>(0u, 1u, 2u, 3u) + 4u * c);
  }
}

fn score_of(s: ptr<function, Scores>, j: u32) -> f32 {
  var x = 0.0;
  for (var c = 0u; c < 4u; c++) {
    x += dot((*s)[c], select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(j) == vec4<u32>(0u, 1u, 2u, 3u) + 4u * c));
  }
  return x;
}

// Which of keys 4c .. 4c+3 the block has.
fn in_block(b: Block, c: u32) -> vec4<bool> {
  return vec4<u32>(0u, 1u, 2u, 3u) + 4u * c < vec4<u32>(b.len);
}

// Folds one block of keys into the state. `keep`: this lane's key's mask flag (SHUFFLE).
fn attend_block(st: ptr<function, State>, kr: ptr<function, KeyRow>, vr: ptr<function, KeyRow>, keep: u32, b: Block, p: Problem, lane: u32) {
  // Scores, one key at a time: every sub-row's dot product, summed per query row.
  var s: array<Scores, SUB>;
  for (var j = 0u; j < b.len; j++) {
    // Zeroed explicitly: a var declared in a loop body was not re-zeroed per
    // iteration here (Dawn + lavapipe), though WGSL says it should be.
    var acc: array<vec4<f32>, SUB>;
    for (var u = 0u; u < SUB; u++) { acc[u] = vec4<f32>(0.0); }
    for (var d = 0u; d < DS; d++) {
      // Each shuffle once, shared by the rows: the compiler cannot merge repeated subgroup operations.
      var kd: array<vec4<f32>, SUB>;
      for (var u = 0u; u < S; u++) { kd[u] = key_at(kr, b, j, head_vec4(u, d)); }
      for (var u = 0u; u < SUB; u++) {
        if (u < R * S) { acc[u] = fma((*st).q[u][d], kd[u % S], acc[u]); }
      }
    }
    var kept = true;
    if (MASK) {
// #if subgroups
      if (SHUFFLE) {
        kept = subgroupShuffle(keep, j) != 0u;
      } else {
        kept = mask[mask_row(p) + b.j0 + j] != 0u;
      }
// #else
      kept = mask[mask_row(p) + b.j0 + j] != 0u;
// #endif
    }
    for (var r = 0u; r < SUB; r++) {
      if (r < R) {
        var x = 0.0;
        for (var u = 0u; u < SUB; u++) {
          if (u / S == r) { x += dot(acc[u], vec4<f32>(1.0)); }
        }
        set_score(&s[r], j, adjust(p, q_index(p, r, lane), b.j0 + j, kept, x));
      }
    }
  }
  // One softmax step per block: the new running max, the rescale, the probabilities.
  var probs: array<Scores, SUB>;
  var alpha: PerRow;
  for (var r = 0u; r < SUB; r++) {
    if (r < R) {
      var m = (*st).m[r];
      for (var c = 0u; c < 4u; c++) {
        let sc = select(vec4<f32>(NEG_MAX), s[r][c], in_block(b, c));
        m = max(m, max(max(sc.x, sc.y), max(sc.z, sc.w)));
      }
      alpha[r] = exp2((*st).m[r] - m);
      var sum = 0.0;
      for (var c = 0u; c < 4u; c++) {
        probs[r][c] = select(vec4<f32>(0.0), exp2(s[r][c] - m), in_block(b, c));
        sum += dot(probs[r][c], vec4<f32>(1.0));
      }
      (*st).l[r] = (*st).l[r] * alpha[r] + sum;
      (*st).m[r] = m;
    }
  }
  for (var u = 0u; u < SUB; u++) {
    if (u < R * S) {
      for (var d = 0u; d < DS; d++) { (*st).o[u][d] *= alpha[u / S]; }
    }
  }
  for (var j = 0u; j < b.len; j++) {
    var pj: PerRow;
    for (var r = 0u; r < SUB; r++) { pj[r] = score_of(&probs[r], j); }
    for (var d = 0u; d < DS; d++) {
      var vd: array<vec4<f32>, SUB>;
      for (var u = 0u; u < S; u++) { vd[u] = value_at(vr, b, j, head_vec4(u, d)); }
      for (var u = 0u; u < SUB; u++) {
        if (u < R * S) { (*st).o[u][d] = fma(vec4<f32>(pj[u / S]), vd[u % S], (*st).o[u][d]); }
      }
    }
  }
}

// Folds the keys of one segment into the state.
fn attend(st: ptr<function, State>, p: Problem, lane: u32, kv_base: u32) {
  let count = params.lk;
  var kr: KeyRow;
  var vr: KeyRow;
  for (var j0 = 0u; j0 < count; j0 += KB) {
    let b = Block(kv_base, j0, min(KB, count - j0));
    var keep = 1u;
    if (SHUFFLE) {
      // Lane l loads key j0 + l; lanes past the end repeat the last key. The
      // bound is the parameter, not D4, so this stays a loop (see main).
      let j = min(j0 + lane, count - 1u);
      let row = kv_base + j * params.kv_token;
      for (var d = 0u; d < params.d4; d++) {
        kr[d] = k[row + d];
        vr[d] = v[row + d];
      }
      if (MASK) { keep = mask[mask_row(p) + j]; }
    }
    if (TILE_KV) {
      workgroupBarrier();
      for (var e = lane; e < b.len * D4; e += WG) {
        let at = kv_base + (j0 + e / D4) * params.kv_token + e % D4;
        k_tile[e] = k[at];
        v_tile[e] = v[at];
      }
      workgroupBarrier();
    }
    attend_block(st, &kr, &vr, keep, b, p, lane);
  }
}

// The problem of a workgroup; n = batch when a grid folded into 2-D overshoots.
fn problem(wid: vec3<u32>, nw: vec3<u32>, rows: u32) -> Problem {
  let g = wid.y * nw.x + wid.x;
  let blocks = (params.lq + rows - 1u) / rows;
  let nh = g / blocks;
  return Problem(nh / params.heads, nh % params.heads, (g % blocks) * rows);
}

@compute @workgroup_size(WG)
// #if subgroups
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sg_lane: u32) {
  // SHUFFLE runs one subgroup per workgroup: lanes are numbered as the shuffles see them.
  let lane = select(lid, sg_lane, SHUFFLE);
// #else
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lane = lid;
// #endif
  let p = problem(wid, nw, WG * R);
  // Whole workgroups leave, so barriers stay in uniform control flow.
  if (p.n >= params.batch) { return; }
  var st: State;
  // scale·log2(e) folded into q. The bounds of this loop and of the store loop
  // are parameters so that they stay loops: unrolled, every load and store
  // would be a copy of llvmpipe's per-lane code, which multiplies compile time
  // (measured: no faster at run time).
  let qs = params.scale * LOG2E;
  for (var e = 0u; e < R * params.d4; e++) {
    let r = e / params.d4;
    let d = e % params.d4;
    st.q[r * S + d / SUB4][d % SUB4] = qs * q[q_row_base(p, q_index(p, r, lane)) + d];
  }
  for (var r = 0u; r < SUB; r++) { st.m[r] = NEG_MAX; }
  for (var c = 0u; c < segments(); c++) {
    let seg = segment(p, c);
    if (seg.y != 0u) { attend(&st, p, lane, seg.x); }
  }
  for (var e = 0u; e < R * params.d4; e++) {
    let r = e / params.d4;
    let d = e % params.d4;
    let i = p.i0 + r * WG + lane;
    if (i < params.lq) { out[q_row_base(p, i) + d] = st.o[r * S + d / SUB4][d % SUB4] / st.l[r]; }
  }
}

// ---- naive: the benchmark baseline --------------------------------------------

// Score of key j of a segment for query row i (log2 units).
fn naive_score(p: Problem, i: u32, kv_base: u32, j: u32) -> f32 {
  let qb = q_row_base(p, i);
  let kb = kv_base + j * params.kv_token;
  var x = 0.0;
  for (var d = 0u; d < params.d4; d++) { x += dot(q[qb + d], k[kb + d]); }
  var kept = true;
  if (MASK) { kept = mask[mask_row(p) + j] != 0u; }
  return adjust(p, i, j, kept, x * params.scale * LOG2E);
}

// One invocation per query row: the max, the sum, then the weighted values
// accumulated in out, each pass recomputing the scores.
@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let p = problem(wid, nw, WG);
  let i = p.i0 + lid;
  if (p.n >= params.batch || i >= params.lq) { return; }
  var m = NEG_MAX;
  for (var c = 0u; c < segments(); c++) {
    let seg = segment(p, c);
    for (var j = 0u; j < params.lk * seg.y; j++) { m = max(m, naive_score(p, i, seg.x, j)); }
  }
  var l = 0.0;
  for (var c = 0u; c < segments(); c++) {
    let seg = segment(p, c);
    for (var j = 0u; j < params.lk * seg.y; j++) { l += exp2(naive_score(p, i, seg.x, j) - m); }
  }
  let ob = q_row_base(p, i);
  for (var d = 0u; d < params.d4; d++) { out[ob + d] = vec4<f32>(0.0); }
  for (var c = 0u; c < segments(); c++) {
    let seg = segment(p, c);
    for (var j = 0u; j < params.lk * seg.y; j++) {
      let w = exp2(naive_score(p, i, seg.x, j) - m) / l;
      let vb = seg.x + j * params.kv_token;
      for (var d = 0u; d < params.d4; d++) { out[ob + d] += w * v[vb + d]; }
    }
  }
}
