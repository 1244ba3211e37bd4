// Softmax along one axis: one 128-thread workgroup per row (outer x inner);
// the max and the sum are tree reductions, all in f32; exp is recomputed in
// the last pass so an f16 output is rounded once.
// P: [rows, axis_len, inner]
//#bind x r
//#bind y rw

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= pw(0u)) { return; }
    let len = pw(1u);
    let inner = pw(2u);
    let base = (r / inner) * len * inner + r % inner;
    var m = -3.4028235e38;
    for (var j = lid; j < len; j += 128u) { m = max(m, ld_x(base + j * inner)); }
    m = wg_max(lid, m);
    var s = 0.0;
    for (var j = lid; j < len; j += 128u) { s += exp(ld_x(base + j * inner) - m); }
    let inv = 1.0 / wg_sum(lid, s);
    for (var j = lid; j < len; j += 128u) {
        st_y(base + j * inner, exp(ld_x(base + j * inner) - m) * inv);
    }
}
