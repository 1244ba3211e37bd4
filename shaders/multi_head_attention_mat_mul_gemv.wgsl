// MultiHeadAttentionMatMul after a split-K attention of one query row:
// c (1 x N) = a (1 x K) * B (K x N), where a[e] (row i = e / hv, the head;
// value dim d = e % hv) is merged from the key chunks' partial softmax states
// (max, sum, acc[hv]) at part[(c * rows + i) * (hv + 2)] (attention_merge.wgsl,
// as multi_head_attention_merge.wgsl does), while A is staged 256 values
// at a time in workgroup memory; the product is gemv.wgsl's: a 16x16
// workgroup owns 16 adjacent columns, its 16 thread rows split K.
// Accumulates in f32.
// f16 storage (P[6] = 1) rounds each merged value to f16 first, as the
// unfused attention would store it.
// P: [N, K, hv, splits, rows, tiles_n, round_a_f16]
//#bind part r
//#bind b r
//#bind c rw
//#include attention_merge

var<workgroup> av: array<f32, 256>;
var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = pw(0u);
    let kdim = pw(1u);
    let g = wg.x + wg.y * nwg.x;
    if (g >= pw(5u)) { return; }
    let col = g * 16u + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) {
            v = merge_partials(k0 + li, pw(4u), pw(2u), pw(3u));
            if (pw(6u) == 1u) { v = unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x; }
        }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            for (var kk = lid.y; kk < kend; kk += 16u) {
                acc = fma(av[kk], ld_b((k0 + kk) * n + col), acc);
            }
        }
        workgroupBarrier();
    }
    sums[li] = acc;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        var sum = 0.0;
        for (var r = 0u; r < 16u; r++) { sum += sums[r * 16u + lid.x]; }
        st_c(col, sum);
    }
}
