// DequantizeLinear: y = (x - zero_point) * scale for u8/i8/i32 x (the
// accessors widen to i32), scale / zero point per tensor, per axis or per
// block along an axis; y in the scale's dtype (f16 rounds on store).
// P: [n, mode(0 tensor, 1 axis, 2 block), inner, dim, block, blocks, has_zp]
//#bind x r
//#bind scale r
//#bind zp r
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let mode = pw(1u);
    var p = 0u;
    if (mode != 0u) {
        let inner = pw(2u);
        let dim = pw(3u);
        let a = (i / inner) % dim;
        p = a;
        if (mode == 2u) {
            p = ((i / (dim * inner)) * pw(5u) + a / pw(4u)) * inner + i % inner;
        }
    }
    var z = 0;
    if (pw(6u) == 1u) { z = li_zp(p); }
    st_y(i, f32(li_x(i) - z) * ld_scale(p));
}
