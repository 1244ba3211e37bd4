// Split-K MultiHeadAttention, second pass: a thread per output element
// (row i, value dim d) merges the key chunks' partials (attention_merge.wgsl:
// the same online-softmax merge the blocked kernel does between its key
// groups). Rows are (batch, query, head) in order, so the output element is
// i * hv + d.
// P: [n, hv, splits]
//#bind part r
//#bind out rw
//#include attention_merge

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_id(gid, nwg);
    let n = pw(0u);
    let hv = pw(1u);
    if (e >= n * hv) { return; }
    st_out(e, merge_partials(e, n, hv, pw(2u)));
}
