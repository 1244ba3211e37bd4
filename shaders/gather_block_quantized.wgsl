// GatherBlockQuantized (4-bit): out[o, j, i] = table[o, idx[j], i] where the
// table is data with its last axis unpacked (two codes per byte, low nibble
// first) and dequantized per block of that axis: (code - zero_point) * scale,
// zero points packed the same way (8 when absent). Only the gathered rows
// are ever decoded. Negative indices count from the end; out-of-range ones
// give 0. Output in the scales' dtype.
// P: [n, axis_len, inner, n_idx, K (unpacked last dim), block, blocks,
//     has_zp, zp_bytes_per_row]
//#bind data r
//#bind idx r
//#bind scales r
//#bind zp r
//#bind out rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let axis_len = pw(1u);
    let inner = pw(2u);
    let n_idx = pw(3u);
    let e = i % inner;
    let j = (i / inner) % n_idx;
    let o = i / (inner * n_idx);
    var k = li_idx(j);
    if (k < 0) { k += i32(axis_len); }
    if (k < 0 || u32(k) >= axis_len) { st_out(i, 0.0); return; }
    let t = (o * axis_len + u32(k)) * inner + e;
    let kdim = pw(4u);
    let row = t / kdim;
    let kk = t % kdim;
    let code = (lw_data(t >> 1u) >> ((t & 1u) * 4u)) & 15u;
    let blk = kk / pw(5u);
    var z = 8u;
    if (pw(7u) == 1u) {
        z = (lw_zp(row * pw(8u) + blk / 2u) >> ((blk & 1u) * 4u)) & 15u;
    }
    st_out(i, (f32(code) - f32(z)) * ld_scales(row * pw(6u) + blk));
}
