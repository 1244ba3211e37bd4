// Cast between device storage kinds (f32/f16 through the float accessors,
// which round on an f16 store). P: [n, from(0 float, 1 i32, 2 bool), to]
//#bind x r
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let src_kind = pw(1u);
    let to = pw(2u);
    var f: f32;
    switch src_kind {
        case 0u: { f = ld_x(i); }
        case 1u: { f = f32(li_x(i)); }
        default: { f = f32(lw_x(i)); }
    }
    if (to == 0u) {
        st_y(i, f);
    } else if (to == 1u) {
        if (src_kind == 0u) {
            // NaN casts to 0; out-of-range values saturate.
            si_y(i, select(i32(f), 0, f != f));
        } else {
            sw_y(i, lw_x(i));
        }
    } else {
        if (src_kind == 0u) {
            sw_y(i, select(0u, 1u, f != 0.0));
        } else {
            sw_y(i, select(0u, 1u, lw_x(i) != 0u));
        }
    }
}
