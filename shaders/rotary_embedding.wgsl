// com.microsoft RotaryEmbedding: rotates the first rotary_dim channels of each
// head; `out` already holds a copy of x. One thread per (b, s, h, pair).
// P: [n, seq, heads, half, seq_stride, head_stride, batch_stride, half_cache,
//     interleaved, pos_scalar, max_pos]
//#bind x r
//#bind pos r
//#bind cos_cache r
//#bind sin_cache r
//#bind out rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let seq = pw(1u);
    let heads = pw(2u);
    let half = pw(3u);
    let k = i % half;
    let h = (i / half) % heads;
    let s = (i / (half * heads)) % seq;
    let b = i / (half * heads * seq);
    var p: i32;
    if (pw(9u) == 1u) { p = li_pos(0u) + i32(s); } else { p = li_pos(b * seq + s); }
    if (p < 0 || u32(p) >= pw(10u)) { return; }
    let c = ld_cos_cache(u32(p) * pw(7u) + k);
    let sn = ld_sin_cache(u32(p) * pw(7u) + k);
    let base = b * pw(6u) + s * pw(4u) + h * pw(5u);
    var i0 = k;
    var i1 = k + half;
    if (pw(8u) == 1u) { i0 = 2u * k; i1 = 2u * k + 1u; }
    let x0 = ld_x(base + i0);
    let x1 = ld_x(base + i1);
    st_out(base + i0, x0 * c - x1 * sn);
    st_out(base + i1, x1 * c + x0 * sn);
}
