// SkipSimplifiedLayerNormalization: sum = x + skip (+ bias), y = rms_norm(sum)
// * gamma; one 128-thread workgroup per row, statistics in f32 (the sum is
// recomputed in f32 for y rather than read back rounded). `skip` is indexed
// modulo its length (a trailing-dims broadcast or full-size). Outputs y,
// inverse RMS, sum.
// P: [rows, inner, eps(f32), has_bias, skip_len]
//#bind x r
//#bind skip r
//#bind gamma r
//#bind bias r
//#bind y rw
//#bind inv_out rw
//#bind sum_out rw

fn sum_at(i: u32, j: u32, has_bias: bool, skip_len: u32) -> f32 {
    var v = ld_x(i) + ld_skip(i % skip_len);
    if (has_bias) { v += ld_bias(j); }
    return v;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= pw(0u)) { return; }
    let inner = pw(1u);
    let base = r * inner;
    let has_bias = pw(3u) == 1u;
    let skip_len = pw(4u);
    var s = 0.0;
    for (var j = lid; j < inner; j += 128u) {
        let v = sum_at(base + j, j, has_bias, skip_len);
        st_sum_out(base + j, v);
        s += v * v;
    }
    let inv = 1.0 / sqrt(wg_sum(lid, s) / f32(inner) + pf(2u));
    for (var j = lid; j < inner; j += 128u) {
        st_y(base + j, sum_at(base + j, j, has_bias, skip_len) * inv * ld_gamma(j));
    }
    if (lid == 0u) { st_inv_out(r, inv); }
}
