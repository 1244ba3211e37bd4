// LayerNormalization over the trailing `inner` elements; one thread per row.
// Outputs Y, mean and inverse standard deviation (per row).
// P: [rows, inner, eps(f32), has_bias]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> inv_out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_id(gid, nwg);
    if (r >= pw(0u)) { return; }
    let inner = pw(1u);
    let base = r * inner;
    var s = 0.0;
    for (var j = 0u; j < inner; j++) { s += x[base + j]; }
    let mean = s / f32(inner);
    var v = 0.0;
    for (var j = 0u; j < inner; j++) {
        let d = x[base + j] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(v / f32(inner) + pf(2u));
    let has_bias = pw(3u) == 1u;
    for (var j = 0u; j < inner; j++) {
        var o = (x[base + j] - mean) * inv * scale[j];
        if (has_bias) { o += bias[j]; }
        y[base + j] = o;
    }
    mean_out[r] = mean;
    inv_out[r] = inv;
}
