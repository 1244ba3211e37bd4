// RMS normalization (SimplifiedLayerNormalization) over the trailing `inner`
// elements; one thread per row. Outputs Y and the inverse RMS per row.
// P: [rows, inner, eps(f32)]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> inv_out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_id(gid, nwg);
    if (r >= pw(0u)) { return; }
    let inner = pw(1u);
    let base = r * inner;
    var s = 0.0;
    for (var j = 0u; j < inner; j++) { s += x[base + j] * x[base + j]; }
    let inv = 1.0 / sqrt(s / f32(inner) + pf(2u));
    for (var j = 0u; j < inner; j++) { y[base + j] = x[base + j] * inv * scale[j]; }
    inv_out[r] = inv;
}
