// LayerNormalization over the trailing `inner` elements: one 128-thread
// workgroup per row, statistics in f32 by tree reductions (two passes: mean,
// then the centred variance). Outputs Y, mean and inverse standard deviation.
// P: [rows, inner, eps(f32), has_bias]
//#bind x r
//#bind scale r
//#bind bias r
//#bind y rw
//#bind mean_out rw
//#bind inv_out rw

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= pw(0u)) { return; }
    let inner = pw(1u);
    let base = r * inner;
    var s = 0.0;
    for (var j = lid; j < inner; j += 128u) { s += ld_x(base + j); }
    let mean = wg_sum(lid, s) / f32(inner);
    var v = 0.0;
    for (var j = lid; j < inner; j += 128u) {
        let d = ld_x(base + j) - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(wg_sum(lid, v) / f32(inner) + pf(2u));
    let has_bias = pw(3u) == 1u;
    for (var j = lid; j < inner; j += 128u) {
        var o = (ld_x(base + j) - mean) * inv * ld_scale(j);
        if (has_bias) { o += ld_bias(j); }
        st_y(base + j, o);
    }
    if (lid == 0u) {
        st_mean_out(r, mean);
        st_inv_out(r, inv);
    }
}
