// com.microsoft MultiHeadAttention core for few query rows (decode steps):
// one 64-thread workgroup per (batch, query position, head). Keys go in blocks of
// 64, one key per thread for the dot product; then each thread owns up to 4
// output dims and folds the block in with an online (single-pass) softmax, so
// no score matrix is stored and V rows are read coalesced. Query head h reads
// key/value head h / (heads / kv_heads); K/V element (b, g, t, d) lives at
// b*bs + g*hs + t*ts + d, which covers [B, T, G*D] caches and [B, G, T, D].
// Masks: key padding (lengths [B], [B, T] or [B, S, T]: masked scores get
// mask_filter_value added), causal (keys after past_len + s are skipped),
// additive attention bias [B|1, H|1, S, T].
// P: [n, S, H, T, hd, hv, scale(f32), mask_kind(0 none 1 lens 2 BT 3 BST),
//     filter(f32), causal, past_len, has_bias, bias_b_bcast, bias_h_bcast,
//     kv_heads, k_bs, k_hs, k_ts, v_bs, v_hs, v_ts]
//#bind q r
//#bind pk r
//#bind pv r
//#bind mask r
//#bind abias r
//#bind out rw

const BLK: u32 = 64u;
var<workgroup> q_row: array<f32, 256>;
var<workgroup> scores: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = wg.x + wg.y * nwg.x;
    if (i >= pw(0u)) { return; }
    let seq = pw(1u);
    let heads = pw(2u);
    let total = pw(3u);
    let hd = pw(4u);
    let hv = pw(5u);
    let scale = pf(6u);
    let mask_kind = pw(7u);
    let filter_value = pf(8u);
    let causal = pw(9u) == 1u;
    let past = pw(10u);
    let kv_heads = pw(14u);
    let h = i % heads;
    let s = (i / heads) % seq;
    let b = i / (heads * seq);
    let g = h / (heads / kv_heads);
    let kbase = b * pw(15u) + g * pw(16u);
    let k_ts = pw(17u);
    let vbase = b * pw(18u) + g * pw(19u);
    let v_ts = pw(20u);
    let qbase = (b * seq + s) * heads * hd + h * hd;
    var bb = b;
    if (pw(12u) == 1u) { bb = 0u; }
    var bh = h;
    var nh = heads;
    if (pw(13u) == 1u) { bh = 0u; nh = 1u; }
    let bias_base = ((bb * nh + bh) * seq + s) * total;
    for (var d = lid; d < hd; d += BLK) { q_row[d] = ld_q(qbase + d) * scale; }
    workgroupBarrier();
    var t_end = total;
    if (causal) { t_end = min(total, past + s + 1u); }
    var m = -3.4028235e38;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var t0 = 0u; t0 < t_end; t0 += BLK) {
        let t = t0 + lid;
        var sc = -3.4028235e38;
        if (t < t_end) {
            var dot = 0.0;
            let kr = kbase + t * k_ts;
            for (var d = 0u; d < hd; d++) { dot = fma(q_row[d], ld_pk(kr + d), dot); }
            sc = dot;
            if (mask_kind == 1u) {
                if (i32(t) >= li_mask(b)) { sc += filter_value; }
            } else if (mask_kind == 2u) {
                if (li_mask(b * total + t) == 0) { sc += filter_value; }
            } else if (mask_kind == 3u) {
                if (li_mask((b * seq + s) * total + t) == 0) { sc += filter_value; }
            }
            if (pw(11u) == 1u) { sc += ld_abias(bias_base + t); }
        }
        scores[lid] = sc;
        workgroupBarrier();
        let n = min(BLK, t_end - t0);
        var bm = m;
        for (var j = 0u; j < n; j++) { bm = max(bm, scores[j]); }
        workgroupBarrier();
        // One exp per key: each thread turns its own score into a weight.
        if (lid < n) { scores[lid] = exp(sc - bm); }
        workgroupBarrier();
        let corr = exp(m - bm);
        l = l * corr;
        for (var c = 0u; c < 4u; c++) { acc[c] = acc[c] * corr; }
        for (var j = 0u; j < n; j++) {
            let p = scores[j];
            l += p;
            let vr = vbase + (t0 + j) * v_ts;
            for (var c = 0u; c < 4u; c++) {
                let d = lid + c * BLK;
                if (d < hv) { acc[c] = fma(p, ld_pv(vr + d), acc[c]); }
            }
        }
        m = bm;
        workgroupBarrier();
    }
    let obase = (b * seq + s) * heads * hv + h * hv;
    var inv = 0.0;
    if (l > 0.0) { inv = 1.0 / l; }
    for (var c = 0u; c < 4u; c++) {
        let d = lid + c * BLK;
        if (d < hv) { st_out(obase + d, acc[c] * inv); }
    }
}
