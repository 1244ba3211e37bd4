// MatMulMulti for one row (M = 1, the decode steps): c_w = a (1 x K) · B_w
// (K x N_w) for up to three weights in one launch. As gemv.wgsl: a 16x16
// workgroup owns 16 adjacent columns of one output (64-byte coalesced reads
// of its weight's rows); its 16 thread rows split K and are summed at the
// end. The flat workgroup id runs over output 0's column tiles, then 1's,
// then 2's, so which weight a workgroup reads is uniform within it. A is
// staged 256 values at a time in workgroup memory. Accumulates in f32.
// Unused weight/output slots are bound to A and a one-word dummy and never read.
// P: [1, K, count, -, N0, N1, N2, -, tiles0, tiles1, tiles2, total tiles]
//#bind a r
//#bind b0 r
//#bind b1 r
//#bind b2 r
//#bind c0 rw
//#bind c1 rw
//#bind c2 rw

var<workgroup> av: array<f32, 256>;
var<workgroup> part: array<f32, 256>;

fn st_cw(w: u32, i: u32, v: f32) {
    if (w == 0u) { st_c0(i, v); } else if (w == 1u) { st_c1(i, v); } else { st_c2(i, v); }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let kdim = pw(1u);
    var g = wg.x + wg.y * nwg.x;
    // Whole workgroups leave together (the barriers below need all threads).
    if (g >= pw(11u)) { return; }
    var w = 0u;
    if (g >= pw(8u)) {
        g -= pw(8u);
        w = 1u;
        if (g >= pw(9u)) {
            g -= pw(9u);
            w = 2u;
        }
    }
    let n = pw(4u + w);
    let col = g * 16u + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) { v = ld_a(k0 + li); }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            // One loop per weight keeps the branch out of the inner loop.
            if (w == 0u) {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    acc = fma(av[kk], ld_b0((k0 + kk) * n + col), acc);
                }
            } else if (w == 1u) {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    acc = fma(av[kk], ld_b1((k0 + kk) * n + col), acc);
                }
            } else {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    acc = fma(av[kk], ld_b2((k0 + kk) * n + col), acc);
                }
            }
        }
        workgroupBarrier();
    }
    part[li] = acc;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        var sum = 0.0;
        for (var r = 0u; r < 16u; r++) { sum += part[r * 16u + lid.x]; }
        st_cw(w, col, sum);
    }
}
