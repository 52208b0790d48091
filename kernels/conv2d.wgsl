// Convolutions as implicit GEMM: output pixels × output channels, reduced over
// input channels × kernel taps. One kernel serves conv2d, conv3d on videos kept
// as (b·t, C, H, W) (a tap may reach another frame of the same video; frames
// outside it are zeros) and the 2×2 stride-2 transposed conv (four 1×1 convs
// whose outputs interleave).
//
// Weights are first repacked (entry `pack`) from PyTorch's layout to
// [tap][C][O_pad] so that the weights of 4 consecutive output channels are one
// 16-byte load. Each invocation owns a register tile of 4·NQ output channels ×
// 4·PV output pixels (PV quads of 4 consecutive flattened pixels), so every
// input value it loads serves 4·NQ channels and every weight quad 4·PV pixels.
//
// Why the tile looks the way it does (Mesa 25 lavapipe, LLVM 15, AVX2): an
// invocation is one SIMD lane and every storage load with a non-constant
// offset becomes a per-lane loop with bounds checks, costing far more than the
// FMAs it feeds; so loads are amortised over as large a tile as possible. The
// tile lives in a function array (`acc`) indexed by constants in the hot loop
// and dynamically only when written out, which keeps it in memory, updated in
// place, instead of as hundreds of SSA values spilled by LLVM. Loops inside
// the channel loop are not unrolled by this compiler (a dynamically indexed
// tile would be gathered and scattered lane by lane), so the tile updates are
// spelled out and trimmed to NQ/PV by override constants. Barriers make lavapipe compile the shader
// as a coroutine whose locals all live in its frame (per-lane loads then
// chain through memory), so the workgroup-memory variant (STAGE) is for GPUs.
//
// Entry points: `conv` (the register tile, or STAGE), `conv_subgroup` (CPU
// adapters with fixed-size subgroups; see its comment) with its input
// transform `channels_last`, and `pack`.
// #if subgroups
enable subgroups;
// #endif

struct Params {
  // Image (row) n = n_first + workgroup z; the bound x and out start at rows
  // x_row0 and out_row0 (tensors larger than one binding come in parts).
  n_first: u32,
  x_row0: u32,
  out_row0: u32,
  in_c: u32,
  in_h: u32,
  in_w: u32,
  out_c: u32,
  // Output grid of the implicit GEMM (pixels of one output image).
  out_h: u32,
  out_w: u32,
  k_t: u32,
  k_h: u32,
  k_w: u32,
  stride: u32,
  pad_top: u32,
  pad_left: u32,
  // Temporal padding and frames per video (0 and 1 for 2-D convs).
  pad_t: u32,
  frames: u32,
  // Packed weights: quads of 4 output channels per (tap, input channel) row,
  // and the first quad used (the transposed conv's tap).
  w_row_quads: u32,
  w_base: u32,
  // Output placement: pixel (y, x) of the grid goes to
  // (y·out_step + out_dy, x·out_step + out_dx) of an out_rows × out_cols plane.
  out_rows: u32,
  out_cols: u32,
  out_step: u32,
  out_dy: u32,
  out_dx: u32,
  has_bias: u32,
}

struct PackParams {
  out_c: u32,
  in_c: u32,
  // Output channels padded to a multiple of 8 (whole 16-byte rows in f16).
  o_pad: u32,
  // Source element strides of output channel, input channel and tap.
  s_o: u32,
  s_c: u32,
  s_t: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The same buffer as x, read a pixel quad at a time when XV4; in
// conv_subgroup, x's channels-last copy.
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
// Packed weights: f32 bits, or halves packed two per word when W_F16.
@group(0) @binding(3) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@group(0) @binding(0) var<uniform> pk: PackParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

// Entry channels_last: rows row0.. of x (binding 1) to [row][pixel][C4].
struct LayoutParams {
  in_c: u32,
  hw: u32,
  row0: u32,
}

@group(0) @binding(0) var<uniform> lp: LayoutParams;
@group(0) @binding(2) var<storage, read_write> x_cl: array<vec4<f32>>;

override WG: u32 = 64;
override W_F16: bool = false;
// Output-channel quads (1..8; even with W_F16) and pixel quads (1..4) per invocation.
override NQ: u32 = 8;
override PV: u32 = 2;
// Pixel quads are 4 aligned, contiguous input values (1×1 kernel, stride 1,
// no spatial padding, H·W a multiple of 4): one vector load instead of four.
override XV4: bool = false;
// Stage each chunk of CC input channels' weights in workgroup memory (GPUs).
override STAGE: bool = false;
override CC: u32 = 16;
// Input channels per accumulator update: 2 halves the masked stores of the
// tile, 1 halves the code (LLVM's compile time grows fast with it).
override U: u32 = 2;

var<workgroup> staged: array<vec4<f32>, CC * NQ>;

// Weights of 4 output channels as stored: quad `q` after the quad whose f32
// index is `rb` (f32) or whose word pair is `rb` (f16, `rb` = f32 index / 2).
fn weight_quad(rb: u32, q: u32) -> vec4<f32> {
  if (W_F16) {
    let u = w[rb + q / 2u];
    if (q % 2u == 0u) {
      return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
    }
    return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
  }
  return bitcast<vec4<f32>>(w[rb + q]);
}

// The NQ weight quads of one (tap, input channel) row for this invocation.
struct Quads {
  q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>,
  q4: vec4<f32>, q5: vec4<f32>, q6: vec4<f32>, q7: vec4<f32>,
}

fn quad_or_zero(rb: u32, q: u32, ok: bool) -> vec4<f32> {
  if (q >= NQ || !ok) {
    return vec4<f32>(0.0);
  }
  if (STAGE) {
    return staged[rb + q];
  }
  return weight_quad(rb, q);
}

// `ok` is false past the last input channel (odd C), whose products are zero.
fn weight_quads(rb: u32, ok: bool) -> Quads {
  return Quads(quad_or_zero(rb, 0u, ok), quad_or_zero(rb, 1u, ok), quad_or_zero(rb, 2u, ok), quad_or_zero(rb, 3u, ok),
               quad_or_zero(rb, 4u, ok), quad_or_zero(rb, 5u, ok), quad_or_zero(rb, 6u, ok), quad_or_zero(rb, 7u, ok));
}

const ACC = 128u;  // 8 channel quads × 4 channels × 4 pixel quads

// acc[32·v + 4·q + j]: output channel 4q + j of pixel quad v. Two input
// channels per update: one masked store per two products.
fn acc4(acc: ptr<function, array<vec4<f32>, ACC>>, i: u32, wa: vec4<f32>, wb: vec4<f32>, xa: vec4<f32>, xb: vec4<f32>) {
  if (U == 1u) {
    (*acc)[i] += xa * wa.x;
    (*acc)[i + 1u] += xa * wa.y;
    (*acc)[i + 2u] += xa * wa.z;
    (*acc)[i + 3u] += xa * wa.w;
    return;
  }
  (*acc)[i] += xa * wa.x + xb * wb.x;
  (*acc)[i + 1u] += xa * wa.y + xb * wb.y;
  (*acc)[i + 2u] += xa * wa.z + xb * wb.z;
  (*acc)[i + 3u] += xa * wa.w + xb * wb.w;
}

fn accumulate(acc: ptr<function, array<vec4<f32>, ACC>>, v: u32, a: Quads, b: Quads, xa: vec4<f32>, xb: vec4<f32>) {
  let i = 32u * v;
  acc4(acc, i, a.q0, b.q0, xa, xb);
  if (NQ > 1u) { acc4(acc, i + 4u, a.q1, b.q1, xa, xb); }
  if (NQ > 2u) { acc4(acc, i + 8u, a.q2, b.q2, xa, xb); }
  if (NQ > 3u) { acc4(acc, i + 12u, a.q3, b.q3, xa, xb); }
  if (NQ > 4u) { acc4(acc, i + 16u, a.q4, b.q4, xa, xb); }
  if (NQ > 5u) { acc4(acc, i + 20u, a.q5, b.q5, xa, xb); }
  if (NQ > 6u) { acc4(acc, i + 24u, a.q6, b.q6, xa, xb); }
  if (NQ > 7u) { acc4(acc, i + 28u, a.q7, b.q7, xa, xb); }
}

// Where the 4 pixels of a quad read channel 0 of the input for one tap.
struct Taps {
  base: vec4<u32>,
  valid: vec4<f32>,
}

fn quad_taps(oy: vec4<i32>, ox: vec4<i32>, frame_base: u32, frame_ok: bool, dy: u32, dx: u32) -> Taps {
  let iy = oy + vec4<i32>(i32(dy));
  let ix = ox + vec4<i32>(i32(dx));
  let inside = (vec4<u32>(iy) < vec4<u32>(params.in_h)) & (vec4<u32>(ix) < vec4<u32>(params.in_w)) & vec4<bool>(frame_ok);
  // Clamped to a valid address; the value is zeroed by `valid`.
  let at = select(vec4<i32>(0), iy * i32(params.in_w) + ix, inside);
  return Taps(vec4<u32>(at) + frame_base, vec4<f32>(inside));
}

// Input values of one channel (plane offset `off`) for a pixel quad.
fn load_x(t: Taps, off: u32, ok: bool) -> vec4<f32> {
  if (XV4) {
    return select(vec4<f32>(0.0), x4[(t.base.x + off) / 4u] * t.valid, ok);
  }
  let v = vec4<f32>(x[t.base.x + off], x[t.base.y + off], x[t.base.z + off], x[t.base.w + off]);
  return select(vec4<f32>(0.0), v * t.valid, ok);
}

@compute @workgroup_size(WG)
fn conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = params.n_first + wid.z;
  let o0 = wid.y * 4u * NQ;
  let npix = params.out_h * params.out_w;
  let hw = params.in_h * params.in_w;
  let khw = params.k_h * params.k_w;
  let first = wid.x * WG * 4u * PV;
  // Top-left input position of every pixel of the tile (before the tap offset).
  var oy: array<vec4<i32>, 4>;
  var ox: array<vec4<i32>, 4>;
  for (var v = 0u; v < PV; v++) {
    for (var i = 0u; i < 4u; i++) {
      let p = min(first + (v * WG + li) * 4u + i, npix - 1u);
      oy[v][i] = i32((p / params.out_w) * params.stride) - i32(params.pad_top);
      ox[v][i] = i32((p % params.out_w) * params.stride) - i32(params.pad_left);
    }
  }
  let oy0 = oy[0]; let oy1 = oy[1]; let oy2 = oy[2]; let oy3 = oy[3];
  let ox0 = ox[0]; let ox1 = ox[1]; let ox2 = ox[2]; let ox3 = ox[3];
  // Frame t of a video is row n; tap dt reads frame t + dt - pad_t of the same video.
  let t_in_video = n % params.frames;
  var acc: array<vec4<f32>, ACC>;
  for (var tap = 0u; tap < params.k_t * khw; tap++) {
    let dt = tap / khw;
    let dy = (tap % khw) / params.k_w;
    let dx = tap % params.k_w;
    let ft = i32(t_in_video + dt) - i32(params.pad_t);
    let frame_ok = ft >= 0 && ft < i32(params.frames);
    let frame_base = select(0u, u32(i32(n - params.x_row0) + ft - i32(t_in_video)) * params.in_c * hw, frame_ok);
    let t0 = quad_taps(oy0, ox0, frame_base, frame_ok, dy, dx);
    let t1 = quad_taps(oy1, ox1, frame_base, frame_ok, dy, dx);
    let t2 = quad_taps(oy2, ox2, frame_base, frame_ok, dy, dx);
    let t3 = quad_taps(oy3, ox3, frame_base, frame_ok, dy, dx);
    // Row (tap, c) of the packed weights starts at quad (tap·C + c)·w_row_quads.
    let row0 = params.w_base + tap * params.in_c * params.w_row_quads + o0 / 4u;
    for (var c0 = 0u; c0 < params.in_c; c0 += CC) {
      if (STAGE) {
        workgroupBarrier();
        for (var e = li; e < CC * NQ; e += WG) {
          let c = c0 + e / NQ;
          let r = row0 + min(c, params.in_c - 1u) * params.w_row_quads + e % NQ;
          var q = vec4<f32>(0.0);
          if (c < params.in_c) {
            q = weight_quad(select(r, r / 2u, W_F16), select(0u, r % 2u, W_F16));
          }
          staged[e] = q;
        }
        workgroupBarrier();
      }
      for (var c = c0; c < min(c0 + CC, params.in_c); c += U) {
        let has_b = U == 2u && c + 1u < params.in_c;
        var ra = row0 + c * params.w_row_quads;
        var rb = ra + params.w_row_quads;
        if (STAGE) {
          ra = (c - c0) * NQ;
          rb = ra + NQ;
        } else if (W_F16) {
          ra /= 2u;
          rb /= 2u;
        }
        let wa = weight_quads(ra, true);
        let wb = weight_quads(rb, has_b);
        let offa = c * hw;
        let offb = min(c + 1u, params.in_c - 1u) * hw;
        accumulate(&acc, 0u, wa, wb, load_x(t0, offa, true), load_x(t0, offb, has_b));
        if (PV > 1u) { accumulate(&acc, 1u, wa, wb, load_x(t1, offa, true), load_x(t1, offb, has_b)); }
        if (PV > 2u) { accumulate(&acc, 2u, wa, wb, load_x(t2, offa, true), load_x(t2, offb, has_b)); }
        if (PV > 3u) { accumulate(&acc, 3u, wa, wb, load_x(t3, offa, true), load_x(t3, offb, has_b)); }
      }
    }
  }
  let plane = params.out_rows * params.out_cols;
  for (var v = 0u; v < PV; v++) {
    for (var j = 0u; j < 4u * NQ; j++) {
      let o = o0 + j;
      if (o >= params.out_c) {
        break;
      }
      var b = 0.0;
      if (params.has_bias != 0u) {
        b = bias[o];
      }
      let r = acc[32u * v + j] + b;
      for (var i = 0u; i < 4u; i++) {
        let p = first + (v * WG + li) * 4u + i;
        if (p < npix) {
          let y = (p / params.out_w) * params.out_step + params.out_dy;
          let xo = (p % params.out_w) * params.out_step + params.out_dx;
          out[((n - params.out_row0) * params.out_c + o) * plane + y * params.out_cols + xo] = r[i];
        }
      }
    }
  }
}

// #if subgroups
// ---- conv_subgroup: CPU adapters ------------------------------------------
//
// The implicit GEMM laid out like kernels/matmul.wgsl's `subgroup` entry (read
// its comment): A is the im2col matrix (output pixel × (tap, input channel)),
// gathered on the fly with the padding and frame masks from a channels-last
// copy of x (entry `channels_last`: [row][pixel][C4], C4 = C rounded up to 4,
// zeros past C), so that 4 input channels of a pixel are one 16-byte load; B
// is the packed weights. Per tap and step of 4 input channels each lane reads
// its own pixel's 4 values in each of RG row groups (pixel p0 + r·SG + lane)
// and the 4 × 4·CG weights of its own output channels (CG quads, one 16-byte
// load per row; f16: one load for both quads). The pixels' values are then
// broadcast lane by lane (constant lane: a register permute) against every
// lane's weights, so each value read serves SG lanes × 4·CG channels and each
// weight RG·SG pixels: a subgroup computes (RG·SG) pixels × (4·CG·SG)
// channels in one pass over the reduction.

override SG: u32 = 8;
// Row groups (1..4) and channel quads per lane (1..2; 2 with W_F16).
override RG: u32 = 4;
override CG: u32 = 2;
const MAX_SG = 16u;
const MAX_CG = 2u;
const SG_ACC = MAX_SG * MAX_CG;

// This lane's CG weight quads of packed row quad index `q` (f32 units).
fn lane_quads(q: u32) -> array<vec4<f32>, MAX_CG> {
  var p: array<vec4<f32>, MAX_CG>;
  if (W_F16) {
    let u = w[q / 2u];
    p[0] = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
    p[1] = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
    return p;
  }
  p[0] = bitcast<vec4<f32>>(w[q]);
  if (CG > 1u) {
    p[1] = bitcast<vec4<f32>>(w[q + 1u]);
  }
  return p;
}

// acc[l·MAX_CG + h]: channels of quad h for pixel l of the row group; the
// columns of bt[h] are weight rows k..k+3, so bt[h] · a sums over the 4 k.
fn sg_pixel(acc: ptr<function, array<vec4<f32>, SG_ACC>>, l: u32, a: vec4<f32>, bt: array<mat4x4<f32>, MAX_CG>) {
  (*acc)[l * MAX_CG] += bt[0] * a;
  if (CG > 1u) {
    (*acc)[l * MAX_CG + 1u] += bt[1] * a;
  }
}

// One row group: lane l read pixel l's values (av). Broadcasts by constant lane, written out.
fn sg_pixels(acc: ptr<function, array<vec4<f32>, SG_ACC>>, av: vec4<f32>, bt: array<mat4x4<f32>, MAX_CG>) {
  sg_pixel(acc, 0u, subgroupBroadcast(av, 0u), bt);
  sg_pixel(acc, 1u, subgroupBroadcast(av, 1u), bt);
  sg_pixel(acc, 2u, subgroupBroadcast(av, 2u), bt);
  sg_pixel(acc, 3u, subgroupBroadcast(av, 3u), bt);
  if (SG > 4u) {
    sg_pixel(acc, 4u, subgroupBroadcast(av, 4u), bt);
    sg_pixel(acc, 5u, subgroupBroadcast(av, 5u), bt);
    sg_pixel(acc, 6u, subgroupBroadcast(av, 6u), bt);
    sg_pixel(acc, 7u, subgroupBroadcast(av, 7u), bt);
  }
  if (SG > 8u) {
    sg_pixel(acc, 8u, subgroupBroadcast(av, 8u), bt);
    sg_pixel(acc, 9u, subgroupBroadcast(av, 9u), bt);
    sg_pixel(acc, 10u, subgroupBroadcast(av, 10u), bt);
    sg_pixel(acc, 11u, subgroupBroadcast(av, 11u), bt);
    sg_pixel(acc, 12u, subgroupBroadcast(av, 12u), bt);
    sg_pixel(acc, 13u, subgroupBroadcast(av, 13u), bt);
    sg_pixel(acc, 14u, subgroupBroadcast(av, 14u), bt);
    sg_pixel(acc, 15u, subgroupBroadcast(av, 15u), bt);
  }
}

// Writes pixels p0.. of a row group for this lane's channels o.. (a loop with
// a runtime bound: unrolled, the stores would dominate compile time).
fn sg_store(acc: ptr<function, array<vec4<f32>, SG_ACC>>, n: u32, p0: u32, o: u32) {
  let npix = params.out_h * params.out_w;
  let plane = params.out_rows * params.out_cols;
  for (var p = p0; p < min(p0 + SG, npix); p++) {
    let y = (p / params.out_w) * params.out_step + params.out_dy;
    let xo = (p % params.out_w) * params.out_step + params.out_dx;
    let at = (n - params.out_row0) * params.out_c * plane + y * params.out_cols + xo;
    for (var j = 0u; j < 4u * CG; j++) {
      let c = o + j;
      if (c < params.out_c) {
        var b = 0.0;
        if (params.has_bias != 0u) {
          b = bias[c];
        }
        out[at + c * plane] = (*acc)[(p - p0) * MAX_CG + j / 4u][j % 4u] + b;
      }
    }
  }
}

@compute @workgroup_size(WG)
fn conv_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
  let n = params.n_first + wid.z;
  let npix = params.out_h * params.out_w;
  let hw = params.in_h * params.in_w;
  let khw = params.k_h * params.k_w;
  let p0 = wid.x * RG * SG;
  // This lane's output channels o..o + 4·CG - 1 (subgroups of a workgroup side by side).
  let o = ((wid.y * (WG / SG) + li / SG) * SG + lane) * 4u * CG;
  // Pixel p0 + r·SG + lane of row group r, as component r.
  var oy: vec4<i32>;
  var ox: vec4<i32>;
  for (var r = 0u; r < 4u; r++) {
    let p = min(p0 + r * SG + lane, npix - 1u);
    oy[r] = i32((p / params.out_w) * params.stride) - i32(params.pad_top);
    ox[r] = i32((p % params.out_w) * params.stride) - i32(params.pad_left);
  }
  let t_in_video = n % params.frames;
  let last_c = params.in_c - 1u;
  // 16-byte units per pixel of the channels-last input.
  let c4 = (params.in_c + 3u) / 4u;
  var acc0: array<vec4<f32>, SG_ACC>;
  var acc1: array<vec4<f32>, SG_ACC>;
  var acc2: array<vec4<f32>, SG_ACC>;
  var acc3: array<vec4<f32>, SG_ACC>;
  for (var tap = 0u; tap < params.k_t * khw; tap++) {
    let dt = tap / khw;
    let ft = i32(t_in_video + dt) - i32(params.pad_t);
    let frame_ok = ft >= 0 && ft < i32(params.frames);
    let frame_base = select(0u, u32(i32(n - params.x_row0) + ft - i32(t_in_video)) * hw, frame_ok);
    let t = quad_taps(oy, ox, frame_base, frame_ok, (tap % khw) / params.k_w, tap % params.k_w);
    let px = t.base * c4;
    let row0 = params.w_base + tap * params.in_c * params.w_row_quads + o / 4u;
    for (var c = 0u; c < c4; c++) {
      // Channels past the last read its weights again; their x values are zero.
      let cs = min(vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last_c));
      let w0 = lane_quads(row0 + cs.x * params.w_row_quads);
      let w1 = lane_quads(row0 + cs.y * params.w_row_quads);
      let w2 = lane_quads(row0 + cs.z * params.w_row_quads);
      let w3 = lane_quads(row0 + cs.w * params.w_row_quads);
      var bt: array<mat4x4<f32>, MAX_CG>;
      bt[0] = mat4x4<f32>(w0[0], w1[0], w2[0], w3[0]);
      bt[1] = mat4x4<f32>(w0[1], w1[1], w2[1], w3[1]);
      sg_pixels(&acc0, x4[px.x + c] * t.valid.x, bt);
      if (RG > 1u) { sg_pixels(&acc1, x4[px.y + c] * t.valid.y, bt); }
      if (RG > 2u) { sg_pixels(&acc2, x4[px.z + c] * t.valid.z, bt); }
      if (RG > 3u) { sg_pixels(&acc3, x4[px.w + c] * t.valid.w, bt); }
    }
  }
  sg_store(&acc0, n, p0, o);
  if (RG > 1u) { sg_store(&acc1, n, p0 + SG, o); }
  if (RG > 2u) { sg_store(&acc2, n, p0 + 2u * SG, o); }
  if (RG > 3u) { sg_store(&acc3, n, p0 + 3u * SG, o); }
}

// Workgroup (x, q, r), invocation i: channels 4q..4q + 3 of pixel x·WG + i of
// row r (consecutive lanes read consecutive values of a channel plane).
@compute @workgroup_size(WG)
fn channels_last(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let p = wid.x * WG + li;
  if (p >= lp.hw) {
    return;
  }
  let first = ((lp.row0 + wid.z) * lp.in_c + 4u * wid.y) * lp.hw + p;
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (4u * wid.y + i < lp.in_c) {
      v[i] = x[first + i * lp.hw];
    }
  }
  x_cl[(wid.z * lp.hw + p) * ((lp.in_c + 3u) / 4u) + wid.y] = v;
}
// #endif

// Repacks PyTorch weights (any layout, by strides) to [tap][C][O_pad], zero
// past the last output channel. Workgroup (tap, c, z), invocation i writes 16
// bytes of row (tap, c): output channels 4q.. (f32) or 8q.. (f16; bits copied,
// not converted) of quad q = z·WG + i. Workgroups run in x-fastest order, so
// consecutive ones read the next taps and channels of the same output
// channels: a source cache line serves several of them (gathering across
// output channels is a cache miss per element otherwise). The indices come
// from the grid, not from divisions: a vector integer division is a scalar
// loop per lane on CPUs.
@compute @workgroup_size(WG)
fn pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let q = wid.z * WG + li;
  let per = select(4u, 8u, W_F16);
  if (q >= pk.o_pad / per) {
    return;
  }
  let row = wid.y * pk.s_c + wid.x * pk.s_t;
  var words: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    if (W_F16) {
      var word = 0u;
      for (var h = 0u; h < 2u; h++) {
        let o = 8u * q + 2u * i + h;
        if (o < pk.out_c) {
          let s = row + o * pk.s_o;
          word |= ((src[s / 2u] >> (16u * (s % 2u))) & 0xffffu) << (16u * h);
        }
      }
      words[i] = word;
    } else {
      let o = 4u * q + i;
      if (o < pk.out_c) {
        words[i] = src[row + o * pk.s_o];
      }
    }
  }
  dst[(wid.x * pk.in_c + wid.y) * (pk.o_pad / per) + q] = vec4<u32>(words[0], words[1], words[2], words[3]);
}

// ---- Winograd F(2×2, 3×3): 3×3 convs, stride 1, padding 1 ----------------
//
// Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A turns each 2×2 output tile into 16 products
// of a 4×4 input patch d with the transformed kernel, so the 9·4 multiplies
// per tile and channel pair of the direct conv become 16 (2.25× fewer). The
// products over input channels are 16 independent GEMMs, run by the matmul
// kernel ([16, tiles, C] · [16, C, O_pad]); these entries make its operands
// and finish its result:
//   winograd_weights  packed weights [9][C][O_pad] → U [16][C4·4][O_pad]
//   winograd_input    x (N, C, H, W) → V [16][tiles][C4·4], zero padding
//   winograd_output   M [16][tiles][O_pad] → out (N, O, H, W) + bias
// The transforms' coefficients are 0, ±1 and ±½, exact in f32. Tiles are
// numbered over the images of the bound x/out (image-major, then rows of
// tiles); a dispatch handles tiles tile0 .. tile0 + tiles - 1.

struct WinogradParams {
  in_c: u32,
  // Input channel quads: V and U rows of 4 channels, zeros past in_c.
  c_quads: u32,
  out_c: u32,
  o_quads: u32,
  h: u32,
  w: u32,
  tiles_w: u32,
  tiles_per_image: u32,
  tile0: u32,
  tiles: u32,
  // First image of the bound x and out (tensors larger than one binding come in parts).
  x_img0: u32,
  out_img0: u32,
  img0: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<uniform> wp: WinogradParams;
// U (weights entry) or V (input entry), written a quad of channels at a time.
@group(0) @binding(6) var<storage, read_write> wino_out: array<vec4<f32>>;
// M, the GEMMs' result (output entry).
@group(0) @binding(7) var<storage, read> wino_m: array<vec4<f32>>;

// Workgroup (x, c): invocation i transforms output channels 4q..4q+3 of input
// channel c (zeros past in_c), q = x·WG + i.
@compute @workgroup_size(WG)
fn winograd_weights(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let q = wid.x * WG + li;
  let c = wid.y;
  if (q >= wp.o_quads) {
    return;
  }
  var g: array<vec4<f32>, 9>;
  if (c < wp.in_c) {
    for (var tap = 0u; tap < 9u; tap++) {
      // Row (tap, c) starts at quad r (even: O_pad is a multiple of 8, as f16 rows need).
      let r = (tap * wp.in_c + c) * wp.o_quads;
      g[tap] = weight_quad(select(r, r / 2u, W_F16), q);
    }
  }
  // G g Gᵀ: first along rows (taps 3i + j), then along columns.
  var t: array<vec4<f32>, 12>;  // [4][3]
  for (var j = 0u; j < 3u; j++) {
    let a = g[j];
    let b = g[3u + j];
    let d = g[6u + j];
    t[j] = a;
    t[3u + j] = 0.5 * (a + b + d);
    t[6u + j] = 0.5 * (a - b + d);
    t[9u + j] = d;
  }
  let rows = wp.c_quads * 4u;
  for (var i = 0u; i < 4u; i++) {
    let a = t[3u * i];
    let b = t[3u * i + 1u];
    let d = t[3u * i + 2u];
    let base = ((4u * i) * rows + c) * wp.o_quads + q;
    let step = rows * wp.o_quads;
    wino_out[base] = a;
    wino_out[base + step] = 0.5 * (a + b + d);
    wino_out[base + 2u * step] = 0.5 * (a - b + d);
    wino_out[base + 3u * step] = d;
  }
}

// Bᵀ z B along one axis: (z0 − z2, z1 + z2, z2 − z1, z1 − z3).
fn wino_bt(z0: vec4<f32>, z1: vec4<f32>, z2: vec4<f32>, z3: vec4<f32>) -> array<vec4<f32>, 4> {
  return array<vec4<f32>, 4>(z0 - z2, z1 + z2, z2 - z1, z1 - z3);
}

// Workgroup (x, cq): invocation i transforms tile tile0 + x·WG + i for input
// channels 4cq..4cq+3 (one component each).
@compute @workgroup_size(WG)
fn winograd_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let k = wid.x * WG + li;
  if (k >= wp.tiles) {
    return;
  }
  let tile = wp.tile0 + k;
  let img = wp.img0 + tile / wp.tiles_per_image;
  let r = tile % wp.tiles_per_image;
  let y0 = i32(2u * (r / wp.tiles_w)) - 1;
  let x0 = i32(2u * (r % wp.tiles_w)) - 1;
  let hw = wp.h * wp.w;
  // d[4·row + col]: the patch, four channels per element.
  var d: array<vec4<f32>, 16>;
  for (var e = 0u; e < 4u; e++) {
    let c = 4u * wid.y + e;
    if (c < wp.in_c) {
      let plane = ((img - wp.x_img0) * wp.in_c + c) * hw;
      for (var i = 0u; i < 4u; i++) {
        let y = y0 + i32(i);
        for (var j = 0u; j < 4u; j++) {
          let xx = x0 + i32(j);
          if (u32(y) < wp.h && u32(xx) < wp.w) {
            d[4u * i + j][e] = x[plane + u32(y) * wp.w + u32(xx)];
          }
        }
      }
    }
  }
  // Bᵀ d B: rows, then columns.
  for (var j = 0u; j < 4u; j++) {
    let col = wino_bt(d[j], d[4u + j], d[8u + j], d[12u + j]);
    d[j] = col[0];
    d[4u + j] = col[1];
    d[8u + j] = col[2];
    d[12u + j] = col[3];
  }
  let step = wp.tiles * wp.c_quads;
  for (var i = 0u; i < 4u; i++) {
    let row = wino_bt(d[4u * i], d[4u * i + 1u], d[4u * i + 2u], d[4u * i + 3u]);
    let base = (4u * i) * step + k * wp.c_quads + wid.y;
    wino_out[base] = row[0];
    wino_out[base + step] = row[1];
    wino_out[base + 2u * step] = row[2];
    wino_out[base + 3u * step] = row[3];
  }
}

// Aᵀ z A along one axis: (z0 + z1 + z2, z1 − z2 − z3).
fn wino_at(z0: vec4<f32>, z1: vec4<f32>, z2: vec4<f32>, z3: vec4<f32>) -> array<vec4<f32>, 2> {
  return array<vec4<f32>, 2>(z0 + z1 + z2, z1 - z2 - z3);
}

// Workgroup (x, oq): invocation i finishes tile tile0 + x·WG + i for output
// channels 4oq..4oq+3.
@compute @workgroup_size(WG)
fn winograd_output(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let k = wid.x * WG + li;
  if (k >= wp.tiles) {
    return;
  }
  let step = wp.tiles * wp.o_quads;
  var m: array<vec4<f32>, 16>;
  for (var e = 0u; e < 16u; e++) {
    m[e] = wino_m[e * step + k * wp.o_quads + wid.y];
  }
  // Aᵀ m A: rows (4 → 2), then columns.
  var s: array<vec4<f32>, 8>;  // [2][4]
  for (var j = 0u; j < 4u; j++) {
    let col = wino_at(m[j], m[4u + j], m[8u + j], m[12u + j]);
    s[j] = col[0];
    s[4u + j] = col[1];
  }
  let tile = wp.tile0 + k;
  let img = wp.img0 + tile / wp.tiles_per_image;
  let r = tile % wp.tiles_per_image;
  let y0 = 2u * (r / wp.tiles_w);
  let x0 = 2u * (r % wp.tiles_w);
  let hw = wp.h * wp.w;
  for (var i = 0u; i < 2u; i++) {
    let row = wino_at(s[4u * i], s[4u * i + 1u], s[4u * i + 2u], s[4u * i + 3u]);
    let y = y0 + i;
    for (var j = 0u; j < 2u; j++) {
      let xx = x0 + j;
      if (y < wp.h && xx < wp.w) {
        for (var e = 0u; e < 4u; e++) {
          let o = 4u * wid.y + e;
          if (o < wp.out_c) {
            var b = 0.0;
            if (wp.has_bias != 0u) {
              b = bias[o];
            }
            out[((img - wp.out_img0) * wp.out_c + o) * hw + y * wp.w + xx] = row[j][e] + b;
          }
        }
      }
    }
  }
}
