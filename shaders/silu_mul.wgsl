// SiluMul, elementwise over equal shapes: y = gate·sigmoid(gate)·up. P: [n]
//#bind gate r
//#bind up r
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let g = ld_gate(i);
    // Clamped so exp stays finite; sigmoid has saturated well before ±80.
    st_y(i, g * ld_up(i) / (1.0 + exp(clamp(-g, -80.0, 80.0))));
}
