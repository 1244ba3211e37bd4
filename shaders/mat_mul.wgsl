// Batched MatMul C[b] = A[b] (M x K) * B[b] (K x N): 64x64 output tiles per
// 16x16-thread workgroup, each thread 4x4 outputs, K in steps of 16 through
// workgroup memory (8 KiB). Accumulates in f32. The flat workgroup id
// (x + y * num_workgroups.x, folded by the host) is batch * tiles + tile.
// Broadcast batch dims have stride 0.
// P: [M, N, K, batch_rank, batch_shape[8] @4, a_batch_stride[8] @12,
//     b_batch_stride[8] @20, tiles_n @28, tiles_m @29, batches @30]
//#bind a r
//#bind b r
//#bind c rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let brank = pw(3u);
    let tiles_n = pw(28u);
    let per_batch = tiles_n * pw(29u);
    let g = wg.x + wg.y * nwg.x;
    let batch = g / per_batch;
    if (batch >= pw(30u)) { return; }
    let t = g % per_batch;
    let col0 = (t % tiles_n) * 64u;
    let row0 = (t / tiles_n) * 64u;
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
    var acc: array<f32, 16>;
    for (var e = 0u; e < 16u; e++) { acc[e] = 0.0; }
    for (var k0 = 0u; k0 < kdim; k0 += 16u) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 256u;
            let gr = row0 + e / 16u;
            let gk = k0 + e % 16u;
            var av = 0.0;
            if (gr < m && gk < kdim) { av = ld_a(aoff + gr * kdim + gk); }
            ta[e] = av;
            let bk = k0 + e / 64u;
            let bc = col0 + e % 64u;
            var bv = 0.0;
            if (bk < kdim && bc < n) { bv = ld_b(boff + bk * n + bc); }
            tb[e] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) { av[i] = ta[(lid.y * 4u + i) * 16u + kk]; }
            for (var j = 0u; j < 4u; j++) { bv[j] = tb[kk * 64u + lid.x + j * 16u]; }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]); }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + j * 16u;
            if (row < m && col < n) { st_c((batch * m + row) * n + col, acc[i * 4u + j]); }
        }
    }
}
