// GatherND with batch_dims: each index row (k values) picks a slice of
// `inner` words from its batch's data.
// P: [n, k, inner, rows_per_batch, batch_stride, -, -, -, data_shape[8] @8, data_stride[8] @16]
// data_shape/stride hold the k indexed dims (after the batch dims).
//#bind data r
//#bind idx r
//#bind out rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let k = pw(1u);
    let inner = pw(2u);
    let row = i / inner;
    let e = i % inner;
    let batch = row / pw(3u);
    var off = batch * pw(4u) + e;
    for (var j = 0u; j < k; j++) {
        var v = li_idx(row * k + j);
        let n = pw(8u + j);
        if (v < 0) { v += i32(n); }
        if (v < 0 || u32(v) >= n) { sw_out(i, 0u); return; }
        off += u32(v) * pw(16u + j);
    }
    sw_out(i, lw_data(off));
}
