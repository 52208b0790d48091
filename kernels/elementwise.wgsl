// Elementwise kernels. One invocation per element (on CPU adapters an
// invocation is a SIMD lane, so this vectorises); the operation is chosen by
// the OP override. Operands broadcast by the pattern
//   operand[(i / inner) % size]
// which covers scalars, per-channel and per-row vectors and full tensors.

struct Params {
  count: u32,
  a_inner: u32,
  a_size: u32,
  b_inner: u32,
  b_size: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;
override OP: u32 = 0;

const SQRT_HALF: f32 = 0.7071067811865476;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn index(wid: vec3<u32>, lid: vec3<u32>, nw: vec3<u32>) -> u32 {
  return (wid.y * nw.x + wid.x) * WG + lid.x;
}

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

// erf by Abramowitz-Stegun 7.1.26 refined: |error| < 1.5e-7, below f32 GELU noise.
fn erf_approx(x: f32) -> f32 {
  let s = sign(x);
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
  return s * y;
}

// OP for unary: 0 silu, 1 sigmoid, 2 gelu (erf), 3 gelu (tanh), 4 alpha*x+beta, 5 exp, 6 relu
fn unary_op(x: f32) -> f32 {
  switch OP {
    case 0u: { return x * sigmoid(x); }
    case 1u: { return sigmoid(x); }
    case 2u: { return 0.5 * x * (1.0 + erf_approx(x * SQRT_HALF)); }
    case 3u: { return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
    case 4u: { return params.alpha * x + params.beta; }
    case 5u: { return exp(x); }
    default: { return max(x, 0.0); }
  }
}

// OP for binary: 0 a+b, 1 a*b, 2 a-b, 3 alpha*a + beta*b, 4 a*(b+1) (scale by 1+b)
fn binary_op(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x * y; }
    case 2u: { return x - y; }
    case 3u: { return params.alpha * x + params.beta * y; }
    default: { return x * (y + 1.0); }
  }
}

@compute @workgroup_size(WG)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(wid, lid, nw);
  if (i >= params.count) { return; }
  out[i] = unary_op(a[(i / params.a_inner) % params.a_size]);
}

@compute @workgroup_size(WG)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(wid, lid, nw);
  if (i >= params.count) { return; }
  out[i] = binary_op(a[(i / params.a_inner) % params.a_size], b[(i / params.b_inner) % params.b_size]);
}

@group(0) @binding(4) var<storage, read> weight: array<f32>;

// (1 - w)·a + w·b with w a one-element tensor (the models' merge parameters).
@compute @workgroup_size(WG)
fn lerp(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(wid, lid, nw);
  if (i >= params.count) { return; }
  let w = weight[0];
  out[i] = (1.0 - w) * a[(i / params.a_inner) % params.a_size] + w * b[(i / params.b_inner) % params.b_size];
}

@group(0) @binding(5) var<storage, read> row_a: array<f32>;
@group(0) @binding(6) var<storage, read> row_b: array<f32>;

// a·row_a[r] + b·row_b[r] with r = i / inner (a_inner): per-row coefficients,
// e.g. the sampler's per-sample schedule terms.
@compute @workgroup_size(WG)
fn row_axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(wid, lid, nw);
  if (i >= params.count) { return; }
  let r = i / params.a_inner;
  out[i] = a[i] * row_a[r] + b[i] * row_b[r];
}

// clamp(a, -s, s) / s with s = row_a[i / inner]: dynamic thresholding.
@compute @workgroup_size(WG)
fn row_threshold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = index(wid, lid, nw);
  if (i >= params.count) { return; }
  let s = row_a[i / params.a_inner];
  out[i] = clamp(a[i], -s, s) / s;
}
