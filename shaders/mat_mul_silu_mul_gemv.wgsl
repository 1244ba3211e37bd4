// MatMulSiluMul for one row (M = 1, the decode steps): y = silu(a·Wg)·(a·Wu)
// with a (1 x K), Wg and Wu (K x N). As gemv.wgsl: a 16x16 workgroup owns 16
// adjacent columns (64-byte coalesced reads of both weights' rows); its 16
// thread rows split K and are summed at the end, where the activation is
// applied. A is staged 256 values at a time in workgroup memory (read once
// for both products). Accumulates in f32.
// P: [1, N, K, tiles_n]
//#bind a r
//#bind wgate r
//#bind wup r
//#bind y rw

var<workgroup> av: array<f32, 256>;
var<workgroup> pg: array<f32, 256>;
var<workgroup> pu: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let g = wg.x + wg.y * nwg.x;
    // Whole workgroups leave together (the barriers below need all threads).
    if (g >= pw(3u)) { return; }
    let col = g * 16u + lid.x;
    var accg = 0.0;
    var accu = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) { v = ld_a(k0 + li); }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            for (var kk = lid.y; kk < kend; kk += 16u) {
                let x = av[kk];
                let i = (k0 + kk) * n + col;
                accg = fma(x, ld_wgate(i), accg);
                accu = fma(x, ld_wup(i), accu);
            }
        }
        workgroupBarrier();
    }
    pg[li] = accg;
    pu[li] = accu;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        var sg = 0.0;
        var su = 0.0;
        for (var r = 0u; r < 16u; r++) {
            sg += pg[r * 16u + lid.x];
            su += pu[r * 16u + lid.x];
        }
        // Clamped so exp stays finite; sigmoid has saturated well before ±80.
        st_y(col, sg * su / (1.0 + exp(clamp(-sg, -80.0, 80.0))));
    }
}
