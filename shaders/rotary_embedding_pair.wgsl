// RotaryEmbeddingPair: rotary_embedding.wgsl over two inputs in one launch
// (the query and key rotaries of one attention block: shared positions and
// caches, their own head counts and strides). One thread per (tensor, b, s,
// h, pair); threads [0, n0) serve x0, the rest x1. Each thread writes both
// channels of its pair, so a full-width rotary needs no copy of x first;
// with rotary_dim < head size the host copies x into out first, as for the
// single op. Positions outside the caches leave x unrotated.
// The caches' rows are row_stride apart, sin's sin_offset after cos's (one
// merged [max_pos, 2C] cache bound twice: row_stride 2C, sin_offset C).
// P: [n0, n_total, seq, half, row_stride, interleaved, pos_scalar, max_pos,
//     per tensor t at 8 + 4t: heads, seq_stride, head_stride, batch_stride,
//     16: sin_offset]
//#bind x0 r
//#bind x1 r
//#bind pos r
//#bind cos_cache r
//#bind sin_cache r
//#bind out0 rw
//#bind out1 rw

fn ld_x(t: u32, i: u32) -> f32 {
    if (t == 0u) { return ld_x0(i); }
    return ld_x1(i);
}

fn st_out(t: u32, i: u32, v: f32) {
    if (t == 0u) { st_out0(i, v); } else { st_out1(i, v); }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var i = flat_id(gid, nwg);
    if (i >= pw(1u)) { return; }
    var t = 0u;
    if (i >= pw(0u)) {
        i -= pw(0u);
        t = 1u;
    }
    let o = 8u + 4u * t;
    let seq = pw(2u);
    let heads = pw(o);
    let half = pw(3u);
    let k = i % half;
    let h = (i / half) % heads;
    let s = (i / (half * heads)) % seq;
    let b = i / (half * heads * seq);
    var p: i32;
    if (pw(6u) == 1u) { p = li_pos(0u) + i32(s); } else { p = li_pos(b * seq + s); }
    let base = b * pw(o + 3u) + s * pw(o + 1u) + h * pw(o + 2u);
    var i0 = k;
    var i1 = k + half;
    if (pw(5u) == 1u) { i0 = 2u * k; i1 = 2u * k + 1u; }
    let x0 = ld_x(t, base + i0);
    let x1 = ld_x(t, base + i1);
    if (p < 0 || u32(p) >= pw(7u)) {
        st_out(t, base + i0, x0);
        st_out(t, base + i1, x1);
        return;
    }
    let c = ld_cos_cache(u32(p) * pw(4u) + k);
    let sn = ld_sin_cache(u32(p) * pw(4u) + pw(16u) + k);
    st_out(t, base + i0, x0 * c - x1 * sn);
    st_out(t, base + i1, x1 * c + x0 * sn);
}
