// Device peak probes for the benchmark's denominators (runtimes.md): FMA
// throughput with independent, unrolled vec4 chains, and copy bandwidth.

struct Params {
  iterations: u32,
  count: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> sink: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;

override WG: u32 = 64;

// 8 chains × 8 fmas per pass: 64 vec4 fmas = 512 flops per pass.
@compute @workgroup_size(WG)
fn fma_peak(@builtin(global_invocation_id) g: vec3<u32>) {
  let seed = f32(g.x) * 1e-9;
  var c0 = vec4<f32>(seed); var c1 = c0 + 0.1; var c2 = c0 + 0.2; var c3 = c0 + 0.3;
  var c4 = c0 + 0.4; var c5 = c0 + 0.5; var c6 = c0 + 0.6; var c7 = c0 + 0.7;
  let m = vec4<f32>(0.999);
  let k = vec4<f32>(0.001);
  for (var i = 0u; i < params.iterations; i++) {
    for (var u = 0u; u < 8u; u++) {
      c0 = fma(c0, m, k); c1 = fma(c1, m, k); c2 = fma(c2, m, k); c3 = fma(c3, m, k);
      c4 = fma(c4, m, k); c5 = fma(c5, m, k); c6 = fma(c6, m, k); c7 = fma(c7, m, k);
    }
  }
  sink[g.x] = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = g.x + g.y * nw.x * WG;
  if (i < params.count) {
    sink[i] = src[i];
  }
}
