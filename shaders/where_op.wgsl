// Where(cond, x, y) with broadcasting.
// P: [n, rank, -, -, shape[8] @4, c_stride[8] @12, x_stride[8] @20, y_stride[8] @28]
//#bind c r
//#bind x r
//#bind y r
//#bind out rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let rank = pw(1u);
    var rem = i;
    var ic = 0u;
    var ix = 0u;
    var iy = 0u;
    for (var k = 0u; k < rank; k++) {
        let d = rank - 1u - k;
        let co = rem % pw(4u + d);
        rem = rem / pw(4u + d);
        ic += co * pw(12u + d);
        ix += co * pw(20u + d);
        iy += co * pw(28u + d);
    }
    sw_out(i, select(lw_y(iy), lw_x(ix), lw_c(ic) != 0u));
}
