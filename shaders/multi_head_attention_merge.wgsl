// Split-K MultiHeadAttention, second pass: a thread per output element
// (row i, value dim d) rescales the key chunks' partials (max, sum, acc[hv]),
// written by multi_head_attention_blocked.wgsl at part[(c * n + i) * (hv + 2)],
// to the largest max and divides: the same online-softmax merge the blocked
// kernel does between its key groups. Rows are (batch, query, head) in
// order, so the output element is i * hv + d. Chunks without keys hold
// (-max_f32, 0, 0...) and add nothing; a row with no keys at all gets 0.
// P: [n, hv, splits]
//#bind part r
//#bind out rw

const NEG: f32 = -3.4028235e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_id(gid, nwg);
    let n = pw(0u);
    let hv = pw(1u);
    let splits = pw(2u);
    if (e >= n * hv) { return; }
    let i = e / hv;
    let d = e % hv;
    let st = hv + 2u;
    let cs = n * st;
    var mm = NEG;
    for (var c = 0u; c < splits; c++) { mm = max(mm, ld_part(c * cs + i * st)); }
    var ll = 0.0;
    var o = 0.0;
    for (var c = 0u; c < splits; c++) {
        let base = c * cs + i * st;
        let f = exp(ld_part(base) - mm);
        ll = fma(ld_part(base + 1u), f, ll);
        o = fma(ld_part(base + 2u + d), f, o);
    }
    var res = 0.0;
    if (ll > 0.0) { res = o / ll; }
    st_out(e, res);
}
