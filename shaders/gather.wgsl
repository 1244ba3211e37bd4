// Gather along one axis: out[o, j, i] = data[o, idx[j], i] (negative indices
// count from the end; out-of-range ones give 0).
// P: [n, axis_len, inner, n_idx]
//#bind data r
//#bind idx r
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
    if (k < 0 || u32(k) >= axis_len) { sw_out(i, 0u); return; }
    sw_out(i, lw_data((o * axis_len + u32(k)) * inner + e));
}
