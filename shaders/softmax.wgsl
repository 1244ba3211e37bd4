// Softmax along one axis; one thread per row (outer x inner), max-subtracted.
// P: [rows, axis_len, inner]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_id(gid, nwg);
    if (r >= pw(0u)) { return; }
    let len = pw(1u);
    let inner = pw(2u);
    let base = (r / inner) * len * inner + r % inner;
    var m = -3.4028235e38;
    for (var j = 0u; j < len; j++) { m = max(m, x[base + j * inner]); }
    var s = 0.0;
    for (var j = 0u; j < len; j++) {
        let e = exp(x[base + j * inner] - m);
        y[base + j * inner] = e;
        s += e;
    }
    let inv = 1.0 / s;
    for (var j = 0u; j < len; j++) { y[base + j * inner] *= inv; }
}
