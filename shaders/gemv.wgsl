// MatMul with one row per batch (M = 1, the decode steps): c[b] = a[b] (1 x K)
// * B[b] (K x N). A 16x16 workgroup owns 16 adjacent columns (64-byte
// coalesced reads of B's rows); its 16 thread rows split K and are summed at
// the end. Narrow tiles give small N (576 for a 135M model) enough
// workgroups to spread over a big GPU. A is
// staged 256 values at a time in workgroup memory. Accumulates in f32.
// Flat workgroup id = batch * tiles_n + tile.
// P: [1, N, K, batch_rank, batch_shape[8] @4, a_batch_stride[8] @12,
//     b_batch_stride[8] @20, tiles_n @28, -, batches @30]
//#bind a r
//#bind b r
//#bind c rw

var<workgroup> av: array<f32, 256>;
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let brank = pw(3u);
    let tiles_n = pw(28u);
    let g = wg.x + wg.y * nwg.x;
    let batch = g / tiles_n;
    if (batch >= pw(30u)) { return; }
    let col = (g % tiles_n) * 16u + lid.x;
    var rem = batch;
    var aoff = 0u;
    var boff = 0u;
    for (var k = 0u; k < brank; k++) {
        let d = brank - 1u - k;
        let co = rem % pw(4u + d);
        rem = rem / pw(4u + d);
        aoff += co * pw(12u + d);
        boff += co * pw(20u + d);
    }
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) { v = ld_a(aoff + k0 + li); }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            for (var kk = lid.y; kk < kend; kk += 16u) {
                acc = fma(av[kk], ld_b(boff + (k0 + kk) * n + col), acc);
            }
        }
        workgroupBarrier();
    }
    part[li] = acc;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        var sum = 0.0;
        for (var r = 0u; r < 16u; r++) { sum += part[r * 16u + lid.x]; }
        st_c(batch * n + col, sum);
    }
}
