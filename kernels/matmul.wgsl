// Matrix multiply: out = op(A) · op(B) (+ bias per output column), batched,
// accumulated in f32.
//
// A is [M, K] f32, or [K, M] with TRANS_A. B is [K, N], or [N, K] with
// TRANS_B (PyTorch's linear weight layout); it is bound as array<u32> and
// read as f32 (bitcast) or as packed f16 (W_F16, two halves per word, low
// half first). Batches run along workgroup_id.z; a zero batch stride
// broadcasts B to every batch. Results go to
//   out[batch * out_batch + row * out_row + (out_col + n) * out_n_stride]
// so the parts of a weight split along N write their column ranges of one
// output, and a product can be written transposed (out_row 1, out_n_stride
// M: a pointwise conv's tokens straight back to channel-major). Reads are clamped into range and masked, writes are guarded, so no
// shape needs to be a multiple of a tile.
//
// Entry points (src/ops/matmul.ts selects one, see selectMatmulVariant):
//   tiled     an invocation computes a TM x 4*TN4 register tile with vec4
//             accumulators; SHARED stages the workgroup's A and B tiles
//             through workgroup memory first (pays off on GPUs).
//   subgroup  for CPU adapters (llvmpipe): see the comment above it; only
//             compiled where the device has subgroups (#if, src/gpu/kernels.ts).
//   naive     one output per invocation: the benchmark's baseline.
// #if subgroups
enable subgroups;
// #endif

struct Params {
  m: u32,
  n: u32,
  k: u32,
  // Element strides between batches; b_batch = 0 broadcasts B.
  a_batch: u32,
  b_batch: u32,
  out_batch: u32,
  // Row stride of out, the first column this dispatch writes, column stride.
  out_row: u32,
  out_col: u32,
  out_n_stride: u32,
  // 1 adds bias[bias_col + n] (a uniform, not an override: the epilogue's
  // branch costs nothing and one pipeline serves layers with and without).
  has_bias: u32,
  bias_col: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The same A and B buffers seen as vec4s (subgroup entry, VEC): Mesa reads a
// vec4 element with one bounds check per lane instead of four.
@group(0) @binding(5) var<storage, read> a_vec: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b_vec: array<vec4<u32>>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override W_F16: bool = false;
// K % 4 == 0: four k-values of an A row (or of a B column with TRANS_B)
// start on a 16-byte boundary (f16 B: on a word).
override VEC: bool = false;

// ---- element access -------------------------------------------------------

fn a_at(base: u32, m: u32, k: u32) -> f32 {
  if (TRANS_A) {
    return a[base + k * params.m + m];
  }
  return a[base + m * params.k + k];
}

fn b_index(base: u32, k: u32, n: u32) -> u32 {
  if (TRANS_B) {
    return base + n * params.k + k;
  }
  return base + k * params.n + n;
}

fn b_elem(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(b[i >> 1u])[i & 1u];
  }
  return bitcast<f32>(b[i]);
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
  return b_elem(b_index(base, k, n));
}

// Lanes of k..k+3 that lie inside K; reads past K are zeroed, whatever they hit.
fn k_mask(k: u32) -> vec4<bool> {
  return vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.k);
}

// A[m, k..k+3].
fn a_k4(base: u32, m: u32, k: u32) -> vec4<f32> {
  var v: vec4<f32>;
  if (VEC && !TRANS_A) {
    v = a_vec[(base + m * params.k + k) >> 2u];
  } else {
    v = vec4<f32>(a_at(base, m, k), a_at(base, m, k + 1u), a_at(base, m, k + 2u), a_at(base, m, k + 3u));
  }
  return select(vec4<f32>(0.0), v, k_mask(k));
}

// B[k..k+3, n].
fn b_k4(base: u32, k: u32, n: u32) -> vec4<f32> {
  var v: vec4<f32>;
  if (VEC && TRANS_B && W_F16) {
    let w = b_index(base, k, n) >> 1u;
    v = vec4<f32>(unpack2x16float(b[w]), unpack2x16float(b[w + 1u]));
  } else if (VEC && TRANS_B) {
    v = bitcast<vec4<f32>>(b_vec[b_index(base, k, n) >> 2u]);
  } else {
    v = vec4<f32>(b_at(base, k, n), b_at(base, k + 1u, n), b_at(base, k + 2u, n), b_at(base, k + 3u, n));
  }
  return select(vec4<f32>(0.0), v, k_mask(k));
}

fn store(base: u32, m: u32, n: u32, v: f32) {
  if (m < params.m && n < params.n) {
    var r = v;
    if (params.has_bias != 0u) {
      r += bias[params.bias_col + n];
    }
    out[base + m * params.out_row + (params.out_col + n) * params.out_n_stride] = r;
  }
}

// ---- tiled: register tiles, optionally staged through workgroup memory ---

override WG_X: u32 = 16;
override WG_Y: u32 = 16;
override TM: u32 = 4;
override TN4: u32 = 1;
override BK: u32 = 16;
override SHARED: bool = true;
const MAX_TM = 8u;
const MAX_TN4 = 2u;

// The workgroup tile is BM x BN = (WG_Y * TM) x (WG_X * 4 * TN4).
var<workgroup> tile_a: array<f32, WG_Y * TM * BK>;
var<workgroup> tile_b: array<f32, WG_X * 4u * TN4 * BK>;

@compute @workgroup_size(WG_X, WG_Y)
fn tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let bm = WG_Y * TM;
  let bn = WG_X * 4u * TN4;
  let m0 = wid.y * bm;
  let n0 = wid.x * bn;
  let a_base = wid.z * params.a_batch;
  let b_base = wid.z * params.b_batch;
  // This invocation's rows m0 + lid.y*TM + i and columns n0 + lid.x*4*TN4 + 4j + c.
  let tm0 = lid.y * TM;
  let tn0 = lid.x * 4u * TN4;
  let last_m = params.m - 1u;
  let last_n = params.n - 1u;
  var acc: array<array<vec4<f32>, MAX_TN4>, MAX_TM>;
  for (var k0 = 0u; k0 < params.k; k0 += BK) {
    if (SHARED) {
      // Cooperative loads: tile_a is [BK][bm], tile_b is [BK][bn]; zero past K.
      let flat = lid.y * WG_X + lid.x;
      for (var i = flat; i < BK * bm; i += WG_X * WG_Y) {
        let kk = k0 + i / bm;
        let v = a_at(a_base, min(m0 + i % bm, last_m), min(kk, params.k - 1u));
        tile_a[i] = select(0.0, v, kk < params.k);
      }
      for (var i = flat; i < BK * bn; i += WG_X * WG_Y) {
        let kk = k0 + i / bn;
        let v = b_at(b_base, min(kk, params.k - 1u), min(n0 + i % bn, last_n));
        tile_b[i] = select(0.0, v, kk < params.k);
      }
      workgroupBarrier();
    }
    for (var kk = 0u; kk < BK; kk++) {
      let k = k0 + kk;
      let k_in = k < params.k;
      let kc = min(k, params.k - 1u);
      var av: array<f32, MAX_TM>;
      var bv: array<vec4<f32>, MAX_TN4>;
      for (var i = 0u; i < TM; i++) {
        if (SHARED) {
          av[i] = tile_a[kk * bm + tm0 + i];
        } else {
          av[i] = select(0.0, a_at(a_base, min(m0 + tm0 + i, last_m), kc), k_in);
        }
      }
      for (var j = 0u; j < TN4; j++) {
        let c = tn0 + 4u * j;
        if (SHARED) {
          let t = kk * bn + c;
          bv[j] = vec4<f32>(tile_b[t], tile_b[t + 1u], tile_b[t + 2u], tile_b[t + 3u]);
        } else {
          let n = n0 + c;
          let v = vec4<f32>(b_at(b_base, kc, min(n, last_n)), b_at(b_base, kc, min(n + 1u, last_n)),
                            b_at(b_base, kc, min(n + 2u, last_n)), b_at(b_base, kc, min(n + 3u, last_n)));
          bv[j] = select(vec4<f32>(0.0), v, k_in);
        }
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN4; j++) {
          acc[i][j] = fma(vec4<f32>(av[i]), bv[j], acc[i][j]);
        }
      }
    }
    if (SHARED) {
      workgroupBarrier();
    }
  }
  let out_base = wid.z * params.out_batch;
  for (var i = 0u; i < TM; i++) {
    for (var j = 0u; j < TN4; j++) {
      let v = acc[i][j];
      let n = n0 + tn0 + 4u * j;
      store(out_base, m0 + tm0 + i, n, v.x);
      store(out_base, m0 + tm0 + i, n + 1u, v.y);
      store(out_base, m0 + tm0 + i, n + 2u, v.z);
      store(out_base, m0 + tm0 + i, n + 3u, v.w);
    }
  }
}

// #if subgroups
// ---- subgroup: CPU adapters ------------------------------------------------
//
// On llvmpipe an invocation is a SIMD lane, and a buffer read costs a scalar
// load, a bounds check and a branch per lane and component, while arithmetic
// is one vector instruction for all lanes. So this kernel maximises
// multiply-adds per value read: per step of 4 k, each lane reads 4 k-values
// of one A row per row group and of its 4 * CG B columns; the A rows are then
// broadcast lane by lane with subgroupShuffle (a register permute) against
// every lane's columns. A subgroup computes (RG * SG) x (4 * CG * SG) outputs
// in one pass over K. The row groups are separate variables and calls, not a
// loop over an array: Mesa unrolls loops only up to a size limit, and an
// accumulator array indexed by a loop counter would live in memory.

override SG: u32 = 8;
override RG: u32 = 4;
override CG: u32 = 2;
override WG: u32 = 8;
const MAX_SG = 16u;
const MAX_CG = 4u;
const MAX_ACC = MAX_SG * MAX_CG;

// acc[l * MAX_CG + h] holds row l's sums for this lane's column group h;
// bt[h][c] = B[k..k+3, column c of group h]; a4 = row l's A values.
fn sg_row(acc: ptr<function, array<vec4<f32>, MAX_ACC>>, l: u32, a4: vec4<f32>, bt: array<mat4x4<f32>, MAX_CG>) {
  for (var h = 0u; h < CG; h++) {
    let t = bt[h];
    (*acc)[l * MAX_CG + h] += vec4<f32>(dot(a4, t[0]), dot(a4, t[1]), dot(a4, t[2]), dot(a4, t[3]));
  }
}

// One row group: row l was read by lane l (av). The broadcasts are written
// out because their lane must be a constant: llvmpipe then makes each a
// register permute, where a shuffle by a loop counter becomes a loop over
// the lanes that LLVM does not unroll at 16 lanes.
fn sg_rows(acc: ptr<function, array<vec4<f32>, MAX_ACC>>, av: vec4<f32>, bt: array<mat4x4<f32>, MAX_CG>) {
  sg_row(acc, 0u, subgroupBroadcast(av, 0u), bt);
  sg_row(acc, 1u, subgroupBroadcast(av, 1u), bt);
  sg_row(acc, 2u, subgroupBroadcast(av, 2u), bt);
  sg_row(acc, 3u, subgroupBroadcast(av, 3u), bt);
  if (SG > 4u) {
    sg_row(acc, 4u, subgroupBroadcast(av, 4u), bt);
    sg_row(acc, 5u, subgroupBroadcast(av, 5u), bt);
    sg_row(acc, 6u, subgroupBroadcast(av, 6u), bt);
    sg_row(acc, 7u, subgroupBroadcast(av, 7u), bt);
  }
  if (SG > 8u) {
    sg_row(acc, 8u, subgroupBroadcast(av, 8u), bt);
    sg_row(acc, 9u, subgroupBroadcast(av, 9u), bt);
    sg_row(acc, 10u, subgroupBroadcast(av, 10u), bt);
    sg_row(acc, 11u, subgroupBroadcast(av, 11u), bt);
    sg_row(acc, 12u, subgroupBroadcast(av, 12u), bt);
    sg_row(acc, 13u, subgroupBroadcast(av, 13u), bt);
    sg_row(acc, 14u, subgroupBroadcast(av, 14u), bt);
    sg_row(acc, 15u, subgroupBroadcast(av, 15u), bt);
  }
}

// Column c of group h of the lane whose first column is n.
fn sg_col(n: u32, h: u32, c: u32) -> u32 {
  return n + (4u * h + c) * SG;
}

// The row loop starts at a runtime value, so Mesa cannot count its trips and
// keeps it a loop: unrolled, these stores would be most of the shader's code
// and of its compile time.
fn sg_store(acc: ptr<function, array<vec4<f32>, MAX_ACC>>, base: u32, m0: u32, n: u32) {
  for (var m = m0; m < min(m0 + SG, params.m); m++) {
    for (var h = 0u; h < CG; h++) {
      let v = (*acc)[(m - m0) * MAX_CG + h];
      store(base, m, sg_col(n, h, 0u), v.x);
      store(base, m, sg_col(n, h, 1u), v.y);
      store(base, m, sg_col(n, h, 2u), v.z);
      store(base, m, sg_col(n, h, 3u), v.w);
    }
  }
}

@compute @workgroup_size(WG)
fn subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(subgroup_invocation_id) lane: u32) {
  let m0 = wid.y * RG * SG;
  let n = (wid.x * (WG / SG) + lid.x / SG) * 4u * CG * SG + lane;
  let a_base = wid.z * params.a_batch;
  let b_base = wid.z * params.b_batch;
  let last_m = params.m - 1u;
  let last_n = params.n - 1u;
  // In row group r this lane reads row m0 + r * SG + lane.
  let r0 = min(m0 + lane, last_m);
  let r1 = min(m0 + SG + lane, last_m);
  let r2 = min(m0 + 2u * SG + lane, last_m);
  let r3 = min(m0 + 3u * SG + lane, last_m);
  let r4 = min(m0 + 4u * SG + lane, last_m);
  let r5 = min(m0 + 5u * SG + lane, last_m);
  let r6 = min(m0 + 6u * SG + lane, last_m);
  let r7 = min(m0 + 7u * SG + lane, last_m);
  var acc0: array<vec4<f32>, MAX_ACC>;
  var acc1: array<vec4<f32>, MAX_ACC>;
  var acc2: array<vec4<f32>, MAX_ACC>;
  var acc3: array<vec4<f32>, MAX_ACC>;
  var acc4: array<vec4<f32>, MAX_ACC>;
  var acc5: array<vec4<f32>, MAX_ACC>;
  var acc6: array<vec4<f32>, MAX_ACC>;
  var acc7: array<vec4<f32>, MAX_ACC>;
  for (var k = 0u; k < params.k; k += 4u) {
    var bt: array<mat4x4<f32>, MAX_CG>;
    for (var h = 0u; h < CG; h++) {
      bt[h] = mat4x4<f32>(b_k4(b_base, k, min(sg_col(n, h, 0u), last_n)), b_k4(b_base, k, min(sg_col(n, h, 1u), last_n)),
                          b_k4(b_base, k, min(sg_col(n, h, 2u), last_n)), b_k4(b_base, k, min(sg_col(n, h, 3u), last_n)));
    }
    sg_rows(&acc0, a_k4(a_base, r0, k), bt);
    if (RG > 1u) {
      sg_rows(&acc1, a_k4(a_base, r1, k), bt);
    }
    if (RG > 2u) {
      sg_rows(&acc2, a_k4(a_base, r2, k), bt);
    }
    if (RG > 3u) {
      sg_rows(&acc3, a_k4(a_base, r3, k), bt);
    }
    if (RG > 4u) { sg_rows(&acc4, a_k4(a_base, r4, k), bt); }
    if (RG > 5u) { sg_rows(&acc5, a_k4(a_base, r5, k), bt); }
    if (RG > 6u) { sg_rows(&acc6, a_k4(a_base, r6, k), bt); }
    if (RG > 7u) { sg_rows(&acc7, a_k4(a_base, r7, k), bt); }
  }
  let out_base = wid.z * params.out_batch;
  sg_store(&acc0, out_base, m0, n);
  if (RG > 1u) {
    sg_store(&acc1, out_base, m0 + SG, n);
  }
  if (RG > 2u) {
    sg_store(&acc2, out_base, m0 + 2u * SG, n);
  }
  if (RG > 3u) {
    sg_store(&acc3, out_base, m0 + 3u * SG, n);
  }
  if (RG > 4u) { sg_store(&acc4, out_base, m0 + 4u * SG, n); }
  if (RG > 5u) { sg_store(&acc5, out_base, m0 + 5u * SG, n); }
  if (RG > 6u) { sg_store(&acc6, out_base, m0 + 6u * SG, n); }
  if (RG > 7u) { sg_store(&acc7, out_base, m0 + 7u * SG, n); }
}

// #endif

// ---- naive: the benchmark baseline ----------------------------------------

@compute @workgroup_size(WG_X, WG_Y)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>) {
  let a_base = gid.z * params.a_batch;
  let b_base = gid.z * params.b_batch;
  let m = min(gid.y, params.m - 1u);
  let n = min(gid.x, params.n - 1u);
  var s = 0.0;
  for (var k = 0u; k < params.k; k++) {
    s = fma(a_at(a_base, m, k), b_at(b_base, k, n), s);
  }
  store(gid.z * params.out_batch, gid.y, gid.x, s);
}
