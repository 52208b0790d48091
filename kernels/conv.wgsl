// Convolutions over NCHW activations: conv2d (any small kernel, stride,
// asymmetric padding), conv3d over videos kept as (b·t, C, H, W) with a
// (kt, kh, kw) kernel and zero frames outside each video (no transpose copy:
// frame t of video b is row b·T + t), and conv_transpose2d with kernel 2,
// stride 2. conv2d is conv3d with kt = 1.
//
// Implicit GEMM: output channels × output pixels, reduced over C·kt·kh·kw.
// Each invocation owns 4 output channels × 4 consecutive output pixels of one
// row, so every input value loaded serves 4 channels and every weight 4 pixels;
// lanes of a workgroup take consecutive pixel quads (contiguous loads on CPU
// SIMD lanes, coalesced on GPUs).

struct Params {
  batch: u32,
  in_c: u32,
  in_h: u32,
  in_w: u32,
  out_c: u32,
  out_h: u32,
  out_w: u32,
  k_t: u32,
  k_h: u32,
  k_w: u32,
  stride: u32,
  pad_top: u32,
  pad_left: u32,
  pad_t: u32,
  frames: u32,
  has_bias: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Weights as u32 words: f32 bits, or two packed halves when W_F16.
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override W_F16: bool = false;

fn weight(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i >> 1u])[i & 1u];
  }
  return bitcast<f32>(w[i]);
}

fn bias_of(o: u32) -> f32 {
  if (params.has_bias == 0u || o >= params.out_c) {
    return 0.0;
  }
  return bias[o];
}

fn flat(wid: vec3<u32>, lid: vec3<u32>, nw: vec3<u32>) -> u32 {
  return (wid.y * nw.x + wid.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let quads_per_row = (params.out_w + 3u) / 4u;
  let oc_blocks = (params.out_c + 3u) / 4u;
  let i = flat(wid, lid, nw);
  let per_image = oc_blocks * params.out_h * quads_per_row;
  if (i >= params.batch * per_image) {
    return;
  }
  let n = i / per_image;
  let r = i % per_image;
  let ob = r / (params.out_h * quads_per_row);
  let p = r % (params.out_h * quads_per_row);
  let oy = p / quads_per_row;
  let ox0 = (p % quads_per_row) * 4u;
  let oc0 = ob * 4u;
  let t = n % params.frames;
  let video = n - t;
  let hw = params.in_h * params.in_w;
  let kk = params.k_t * params.k_h * params.k_w;
  // acc[j] holds output channel oc0 + j for the 4 pixels ox0..ox0+3.
  var acc: array<vec4<f32>, 4>;
  for (var c = 0u; c < params.in_c; c++) {
    for (var dt = 0u; dt < params.k_t; dt++) {
      let ft = i32(t + dt) - i32(params.pad_t);
      if (ft < 0 || ft >= i32(params.frames)) {
        continue;
      }
      let plane = ((video + u32(ft)) * params.in_c + c) * hw;
      for (var dy = 0u; dy < params.k_h; dy++) {
        let iy = i32(oy * params.stride + dy) - i32(params.pad_top);
        if (iy < 0 || iy >= i32(params.in_h)) {
          continue;
        }
        let row = plane + u32(iy) * params.in_w;
        for (var dx = 0u; dx < params.k_w; dx++) {
          var xv = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let ix = i32((ox0 + q) * params.stride + dx) - i32(params.pad_left);
            if (ix >= 0 && ix < i32(params.in_w)) {
              xv[q] = x[row + u32(ix)];
            }
          }
          let tap = (dt * params.k_h + dy) * params.k_w + dx;
          for (var j = 0u; j < 4u; j++) {
            let o = min(oc0 + j, params.out_c - 1u);
            acc[j] = fma(vec4<f32>(weight((o * params.in_c + c) * kk + tap)), xv, acc[j]);
          }
        }
      }
    }
  }
  let out_hw = params.out_h * params.out_w;
  for (var j = 0u; j < 4u; j++) {
    let o = oc0 + j;
    if (o >= params.out_c) {
      break;
    }
    let b = bias_of(o);
    let base = (n * params.out_c + o) * out_hw + oy * params.out_w;
    for (var q = 0u; q < 4u; q++) {
      if (ox0 + q < params.out_w) {
        out[base + ox0 + q] = acc[j][q] + b;
      }
    }
  }
}

// ConvTranspose2d, kernel 2, stride 2: out[n, o, 2y + a, 2x + b] =
// bias[o] + sum_c x[n, c, y, x] · w[c, o, a, b]. One invocation per output
// element (each reads C inputs and C weights).
@compute @workgroup_size(WG)
fn conv_transpose2x2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = flat(wid, lid, nw);
  let out_hw = params.out_h * params.out_w;
  if (i >= params.batch * params.out_c * out_hw) {
    return;
  }
  let n = i / (params.out_c * out_hw);
  let o = (i / out_hw) % params.out_c;
  let p = i % out_hw;
  let oy = p / params.out_w;
  let ox = p % params.out_w;
  let hw = params.in_h * params.in_w;
  let src = n * params.in_c * hw + (oy / 2u) * params.in_w + ox / 2u;
  let tap = (oy % 2u) * 2u + ox % 2u;
  var acc = 0.0;
  for (var c = 0u; c < params.in_c; c++) {
    acc = fma(x[src + c * hw], weight((c * params.out_c + o) * 4u + tap), acc);
  }
  out[i] = acc + bias_of(o);
}
