// com.microsoft MultiHeadAttention core for few query rows (decode steps):
// one 256-thread workgroup per (batch, query position, head). With so few
// workgroups the kernel is bound by memory latency, so every thread keeps
// many independent loads in flight and the keys go in tiles of 256:
//  1. dot products: 8 threads per key, each over every 8th dim (neighbours
//     read neighbouring K elements), 8 keys per thread; the 8 partial sums
//     meet in workgroup memory and one thread per key adds them and applies
//     masks and bias;
//  2. values: the threads form 256/VL groups of VL lanes (VL = P[21], with
//     4*VL >= hv, so a lane owns up to 4 output dims, read coalesced); group
//     g takes tile keys [g*VL, g*VL + VL) into its own online (single-pass)
//     softmax (max, sum, acc), so no score matrix is stored and no
//     workgroup-wide max is needed per tile;
//  3. the groups' (max, sum, acc) merge once through workgroup memory.
// Two barriers per tile. Query head h reads key/value head
// h / (heads / kv_heads); K/V element (b, g, t, d) lives at
// b*bs + g*hs + t*ts + d, which covers [B, T, G*D] caches and [B, G, T, D].
// Masks: key padding (lengths [B], [B, T] or [B, S, T]: masked scores get
// mask_filter_value added), causal (keys after past_len + s are skipped),
// additive attention bias [B|1, H|1, S, T]. hd, hv <= 256.
// Split-K (flash decoding): with splits = P[22] > 0 the n * splits
// workgroups each take one chunk of P[23] keys (row i = id % n, chunk
// id / n) and write the chunk's unnormalised partial (max, sum, acc[hv]) to
// out[(chunk * n + i) * (hv + 2)]; multi_head_attention_merge.wgsl combines
// them. A chunk with no keys (causal) writes (-max_f32, 0, 0...).
// P: [n, S, H, T, hd, hv, scale(f32), mask_kind(0 none 1 lens 2 BT 3 BST),
//     filter(f32), causal, past_len, has_bias, bias_b_bcast, bias_h_bcast,
//     kv_heads, k_bs, k_hs, k_ts, v_bs, v_hs, v_ts, VL, splits, chunk_keys]
//#bind q r
//#bind pk r
//#bind pv r
//#bind mask r
//#bind abias r
//#bind out rw

const WGS: u32 = 256u;
// Keys per tile: 32 key slots (WGS / 8 threads per key) x 8 keys per thread.
const TK: u32 = 256u;
const NEG: f32 = -3.4028235e38;
// Query row scaled, zero past hd (the dot loop runs over whole groups of 8).
var<workgroup> q_row: array<f32, 256>;
// Partial dots at (r * 8 + sub) * 33 + slot (33: fewer bank conflicts); then
// the groups' accumulators at c * 256 + thread.
var<workgroup> part: array<f32, 2112>;
var<workgroup> scores: array<f32, 256>;
var<workgroup> grp_m: array<f32, 64>;
var<workgroup> grp_l: array<f32, 64>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = pw(0u);
    let split = pw(22u) > 0u;
    let wid = wg.x + wg.y * nwg.x;
    if (wid >= n * max(pw(22u), 1u)) { return; }
    let i = wid % n;
    let chunk = wid / n;
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
    let vl = pw(21u);
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
    if (lid < hd) {
        q_row[lid] = ld_q(qbase + lid) * scale;
    } else {
        q_row[lid] = 0.0;
    }
    workgroupBarrier();
    var t_end = total;
    if (causal) { t_end = min(total, past + s + 1u); }
    var t_begin = 0u;
    if (split) {
        t_begin = chunk * pw(23u);
        t_end = min(t_end, t_begin + pw(23u));
    }
    // Dot-product roles: key slot and dim offset.
    let slot = lid / 8u;
    let sub = lid % 8u;
    let nj = (hd + 7u) / 8u;
    // Value roles: group (its tile keys) and lane (its dims lane + VL * c).
    let grp = lid / vl;
    let lane = lid % vl;
    let kstart = grp * vl;
    var m = NEG;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var t0 = t_begin; t0 < t_end; t0 += TK) {
        // Thread lid owns tile key lid for the score: its mask and bias
        // loads go out now, with the K loads, not after the barrier.
        let t = t0 + lid;
        var extra = 0.0;
        if (t < t_end) {
            if (mask_kind == 1u) {
                if (i32(t) >= li_mask(b)) { extra = filter_value; }
            } else if (mask_kind == 2u) {
                if (li_mask(b * total + t) == 0) { extra = filter_value; }
            } else if (mask_kind == 3u) {
                if (li_mask((b * seq + s) * total + t) == 0) { extra = filter_value; }
            }
            if (pw(11u) == 1u) { extra += ld_abias(bias_base + t); }
        }
        // Rows past the end are read at the last key (in bounds); their
        // scores are never used.
        let t_last = t_end - 1u;
        var rb: array<u32, 8>;
        for (var r = 0u; r < 8u; r++) { rb[r] = kbase + min(t0 + slot + 32u * r, t_last) * k_ts; }
        var dot: array<f32, 8>;
        // Two dims per key per pass (16 loads in flight). q_row is 0 past hd
        // (up to 256 >= 8 * (nj + 1) when nj is odd), so clamped elements
        // add nothing.
        for (var j = 0u; j < nj; j += 2u) {
            let d0 = sub + 8u * j;
            let d1 = d0 + 8u;
            let q0 = q_row[d0];
            let q1 = q_row[d1];
            let e0 = min(d0, hd - 1u);
            let e1 = min(d1, hd - 1u);
            for (var r = 0u; r < 8u; r++) {
                let k0 = ld_pk(rb[r] + e0);
                let k1 = ld_pk(rb[r] + e1);
                dot[r] = fma(q1, k1, fma(q0, k0, dot[r]));
            }
        }
        for (var r = 0u; r < 8u; r++) { part[(r * 8u + sub) * 33u + slot] = dot[r]; }
        workgroupBarrier();
        // Scores: thread lid owns tile key lid (slot lid % 32, r = lid / 32).
        var sc = NEG;
        if (t < t_end) {
            let pb = (lid / 32u) * 8u * 33u + lid % 32u;
            var dsum = 0.0;
            for (var u = 0u; u < 8u; u++) { dsum += part[pb + u * 33u]; }
            sc = dsum + extra;
        }
        scores[lid] = sc;
        // The next write to scores (next tile) is after the next barrier, and
        // part is not read again in this tile: two barriers per tile suffice.
        workgroupBarrier();
        if (t0 + kstart < t_end) {
            let nv = min(vl, t_end - t0 - kstart);
            var bm = m;
            for (var j = 0u; j < nv; j++) { bm = max(bm, scores[kstart + j]); }
            let corr = exp(m - bm);
            l *= corr;
            for (var c = 0u; c < 4u; c++) { acc[c] *= corr; }
            let row0 = t0 + kstart;
            // Eight keys at a time (32 independent loads); keys past nv
            // weigh 0 and read the last valid row.
            for (var j = 0u; j < nv; j += 8u) {
                var p: array<f32, 8>;
                var vr: array<u32, 8>;
                for (var u = 0u; u < 8u; u++) {
                    let jj = min(j + u, nv - 1u);
                    p[u] = select(0.0, exp(scores[kstart + jj] - bm), j + u < nv);
                    vr[u] = vbase + (row0 + jj) * v_ts;
                    l += p[u];
                }
                for (var c = 0u; c < 4u; c++) {
                    let dd = min(lane + vl * c, hv - 1u);
                    for (var u = 0u; u < 8u; u++) { acc[c] = fma(p[u], ld_pv(vr[u] + dd), acc[c]); }
                }
            }
            m = bm;
        }
    }
    // part was last read before the loop's final barrier: free for the merge.
    for (var c = 0u; c < 4u; c++) { part[c * WGS + lid] = acc[c]; }
    if (lane == 0u) {
        grp_m[grp] = m;
        grp_l[grp] = l;
    }
    workgroupBarrier();
    if (lid < hv) {
        let ngrp = WGS / vl;
        let ln = lid % vl;
        let c = lid / vl;
        var mm = NEG;
        for (var gi = 0u; gi < ngrp; gi++) { mm = max(mm, grp_m[gi]); }
        var ll = 0.0;
        var o = 0.0;
        for (var gi = 0u; gi < ngrp; gi++) {
            let f = exp(grp_m[gi] - mm);
            ll = fma(grp_l[gi], f, ll);
            o = fma(part[c * WGS + gi * vl + ln], f, o);
        }
        if (split) {
            let pbase = (chunk * n + i) * (hv + 2u);
            if (lid == 0u) {
                st_out(pbase, mm);
                st_out(pbase + 1u, ll);
            }
            st_out(pbase + 2u + lid, o);
        } else {
            var res = 0.0;
            if (ll > 0.0) { res = o / ll; }
            st_out((b * seq + s) * heads * hv + h * hv + lid, res);
        }
    }
}
