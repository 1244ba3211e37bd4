// Generic strided copy of 32-bit words: thread i walks the iteration shape;
// src = src_base + sum((c_d % src_mod_d) * src_stride_d) (strides may be
// negative), dst = dst_base + sum(c_d * dst_stride_d). Serves Transpose,
// Slice, Expand, Tile, Concat, Split and the KV-cache concatenation.
// P: [n, rank, src_base(i32), dst_base, shape[8] @4, src_stride[8](i32) @12,
//     src_mod[8] @20, dst_stride[8] @28]
//#bind src r
//#bind dst rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let rank = pw(1u);
    var rem = i;
    var s = pi(2u);
    var d = pw(3u);
    for (var k = 0u; k < rank; k++) {
        let dim = rank - 1u - k;
        let c = rem % pw(4u + dim);
        rem = rem / pw(4u + dim);
        s += i32(c % pw(20u + dim)) * pi(12u + dim);
        d += c * pw(28u + dim);
    }
    sw_dst(d, lw_src(u32(s)));
}
