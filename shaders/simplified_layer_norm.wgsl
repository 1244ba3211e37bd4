// RMS normalization (SimplifiedLayerNormalization) over the trailing `inner`
// elements: one 128-thread workgroup per row, the sum of squares in f32 by a
// tree reduction. Outputs Y and the inverse RMS per row.
// P: [rows, inner, eps(f32)]
//#bind x r
//#bind scale r
//#bind y rw
//#bind inv_out rw

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= pw(0u)) { return; }
    let inner = pw(1u);
    let base = r * inner;
    var s = 0.0;
    for (var j = lid; j < inner; j += 128u) {
        let v = ld_x(base + j);
        s += v * v;
    }
    let inv = 1.0 / sqrt(wg_sum(lid, s) / f32(inner) + pf(2u));
    for (var j = lid; j < inner; j += 128u) { st_y(base + j, ld_x(base + j) * inv * ld_scale(j)); }
    if (lid == 0u) { st_inv_out(r, inv); }
}
