// The deliberately naive convolution: one output element per invocation, a
// direct loop over input channels and (kt, kh, kw) taps, weights read in
// PyTorch's own layout [O][C][kt][kh][kw]. Videos are kept as (b·t, C, H, W):
// a temporal tap reads frame t + dt - pad_t of the same video, zeros outside
// it. conv2d is the case kt = 1, frames = 1. The benchmarks' baseline and an
// independent check of kernels/conv2d.wgsl; the ops use that one.

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
// f32 bits, or two halves per word when W_F16.
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 64;
override W_F16: bool = false;

fn weight(i: u32) -> f32 {
  if (W_F16) {
    return unpack2x16float(w[i / 2u])[i % 2u];
  }
  return bitcast<f32>(w[i]);
}

@compute @workgroup_size(WG)
fn naive(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = (wid.y * nw.x + wid.x) * WG + li;
  let plane = params.out_h * params.out_w;
  if (i >= params.batch * params.out_c * plane) {
    return;
  }
  let n = i / (params.out_c * plane);
  let o = (i / plane) % params.out_c;
  let oy = (i % plane) / params.out_w;
  let ox = i % params.out_w;
  let t = n % params.frames;
  let hw = params.in_h * params.in_w;
  var acc = 0.0;
  if (params.has_bias != 0u) {
    acc = bias[o];
  }
  for (var c = 0u; c < params.in_c; c++) {
    for (var dt = 0u; dt < params.k_t; dt++) {
      let ft = i32(t + dt) - i32(params.pad_t);
      for (var dy = 0u; dy < params.k_h; dy++) {
        let iy = i32(oy * params.stride + dy) - i32(params.pad_top);
        for (var dx = 0u; dx < params.k_w; dx++) {
          let ix = i32(ox * params.stride + dx) - i32(params.pad_left);
          if (ft >= 0 && ft < i32(params.frames) && iy >= 0 && iy < i32(params.in_h) && ix >= 0 && ix < i32(params.in_w)) {
            let xv = x[((n - t + u32(ft)) * params.in_c + c) * hw + u32(iy) * params.in_w + u32(ix)];
            acc += xv * weight((((o * params.in_c + c) * params.k_t + dt) * params.k_h + dy) * params.k_w + dx);
          }
        }
      }
    }
  }
  out[i] = acc;
}
