// Split-K attention's merge (included by the kernels that finish a split
// attention): output element e of row i = e / hv, value dim d = e % hv,
// from the key chunks' partial softmax states (max, sum, acc[hv]) that
// multi_head_attention_blocked.wgsl wrote at part[(c * rows + i) * (hv + 2)]:
// each chunk rescaled to the largest max, then acc / sum. Chunks without
// keys hold (-max_f32, 0, 0...) and add nothing; a row with no keys gives 0.
// Needs a `part` binding.

fn merge_partials(e: u32, rows: u32, hv: u32, splits: u32) -> f32 {
    let i = e / hv;
    let d = e % hv;
    let st = hv + 2u;
    let cs = rows * st;
    var mm = -3.4028235e38;
    for (var c = 0u; c < splits; c++) { mm = max(mm, ld_part(c * cs + i * st)); }
    var ll = 0.0;
    var o = 0.0;
    for (var c = 0u; c < splits; c++) {
        let base = c * cs + i * st;
        let f = exp(ld_part(base) - mm);
        ll = fma(ld_part(base + 1u), f, ll);
        o = fma(ld_part(base + 2u + d), f, o);
    }
    if (ll > 0.0) { return o / ll; }
    return 0.0;
}
