// MatMulEpilogue for one row (M = 1, the decode steps): c = a (1 x K) * B
// (K x N) (+ bias) (+ residual), as gemv.wgsl: a 64x4 workgroup owns 64
// adjacent columns (coalesced reads of B's rows); its 4 thread rows split K
// and are summed at the end, where the bias and residual are added. A is
// staged 256 values at a time in workgroup memory. Accumulates in f32.
// Absent bias/residual are bound to A and not read (flags).
// P: [1, N, K, flags (1 bias, 2 residual), tiles_n]
//#bind a r
//#bind b r
//#bind bias r
//#bind res r
//#bind c rw

var<workgroup> av: array<f32, 256>;
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let flags = pw(3u);
    let g = wg.x + wg.y * nwg.x;
    // Whole workgroups leave together (the barriers below need all threads).
    if (g >= pw(4u)) { return; }
    let col = g * 64u + lid.x;
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) { v = ld_a(k0 + li); }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            for (var kk = lid.y; kk < kend; kk += 4u) {
                acc = fma(av[kk], ld_b((k0 + kk) * n + col), acc);
            }
        }
        workgroupBarrier();
    }
    part[li] = acc;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        var y = part[lid.x] + part[64u + lid.x] + part[128u + lid.x] + part[192u + lid.x];
        if ((flags & 1u) != 0u) { y += ld_bias(col); }
        if ((flags & 2u) != 0u) { y += ld_res(col); }
        st_c(col, y);
    }
}
