// ScatterND (reduction none) after `out` was filled with a copy of the data:
// each index row (k values) receives a slice of `inner` update words.
// P: [n_updates, k, inner, -, data_shape[8] @4, data_stride[8] @12]
//#bind idx r
//#bind upd r
//#bind out rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let k = pw(1u);
    let inner = pw(2u);
    let row = i / inner;
    var off = i % inner;
    for (var j = 0u; j < k; j++) {
        var v = li_idx(row * k + j);
        let n = pw(4u + j);
        if (v < 0) { v += i32(n); }
        if (v < 0 || u32(v) >= n) { return; }
        off += u32(v) * pw(12u + j);
    }
    sw_out(off, lw_upd(i));
}
