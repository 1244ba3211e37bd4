// com.microsoft MultiHeadAttention core for many query rows (prefill, vision):
// one thread per (batch, query position, head), single-pass (online) softmax,
// so no score matrix is stored. Query head h reads key/value head
// h / (heads / kv_heads); K/V element (b, g, t, d) lives at b*bs + g*hs +
// t*ts + d ([B, T, G*D] caches and [B, G, T, D] alike). For few rows,
// multi_head_attention_blocked.wgsl spreads each row over a workgroup. Masks: key padding (lengths [B], [B, T] or
// [B, S, T]; masked scores get mask_filter_value added), causal (keys after
// past_len + s are skipped), additive attention bias [B|1, H|1, S, T].
// P: [n, S, H, T, hd, hv, scale(f32), mask_kind(0 none 1 lens 2 BT 3 BST),
//     filter(f32), causal, past_len, has_bias, bias_b_bcast, bias_h_bcast,
//     kv_heads, k_bs, k_hs, k_ts, v_bs, v_hs, v_ts]
//#bind q r
//#bind pk r
//#bind pv r
//#bind mask r
//#bind abias r
//#bind out rw

const MAX_HV: u32 = 256u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
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
    let h = i % heads;
    let s = (i / heads) % seq;
    let b = i / (heads * seq);
    let qbase = (b * seq + s) * heads * hd + h * hd;
    let g = h / (heads / pw(14u));
    let kbase = b * pw(15u) + g * pw(16u);
    let k_ts = pw(17u);
    let vbase = b * pw(18u) + g * pw(19u);
    let v_ts = pw(20u);
    var bb = b;
    if (pw(12u) == 1u) { bb = 0u; }
    var bh = h;
    var nh = heads;
    if (pw(13u) == 1u) { bh = 0u; nh = 1u; }
    let bias_base = ((bb * nh + bh) * seq + s) * total;
    var m = -3.4028235e38;
    var l = 0.0;
    var acc: array<f32, MAX_HV>;
    for (var d = 0u; d < hv; d++) { acc[d] = 0.0; }
    for (var t = 0u; t < total; t++) {
        if (causal && t > past + s) { break; }
        var dot = 0.0;
        for (var d = 0u; d < hd; d++) { dot = fma(ld_q(qbase + d), ld_pk(kbase + t * k_ts + d), dot); }
        var sc = dot * scale;
        if (mask_kind == 1u) {
            if (i32(t) >= li_mask(b)) { sc += filter_value; }
        } else if (mask_kind == 2u) {
            if (li_mask(b * total + t) == 0) { sc += filter_value; }
        } else if (mask_kind == 3u) {
            if (li_mask((b * seq + s) * total + t) == 0) { sc += filter_value; }
        }
        if (pw(11u) == 1u) { sc += ld_abias(bias_base + t); }
        let m_new = max(m, sc);
        let corr = exp(m - m_new);
        let p = exp(sc - m_new);
        l = l * corr + p;
        for (var d = 0u; d < hv; d++) { acc[d] = acc[d] * corr + p * ld_pv(vbase + t * v_ts + d); }
        m = m_new;
    }
    let obase = (b * seq + s) * heads * hv + h * hv;
    let inv = 1.0 / l;
    for (var d = 0u; d < hv; d++) { st_out(obase + d, acc[d] * inv); }
}
