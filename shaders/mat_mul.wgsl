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
    // Four rows of four columns as vec4s: no dynamically indexed private
    // arrays (which some compilers, llvmpipe among them, keep in memory).
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
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
        let ra = lid.y * 64u;
        for (var kk = 0u; kk < 16u; kk++) {
            let tbo = kk * 64u + lid.x;
            let bv = vec4<f32>(tb[tbo], tb[tbo + 16u], tb[tbo + 32u], tb[tbo + 48u]);
            c0 = fma(vec4<f32>(ta[ra + kk]), bv, c0);
            c1 = fma(vec4<f32>(ta[ra + 16u + kk]), bv, c1);
            c2 = fma(vec4<f32>(ta[ra + 32u + kk]), bv, c2);
            c3 = fma(vec4<f32>(ta[ra + 48u + kk]), bv, c3);
        }
        workgroupBarrier();
    }
    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x;
    store_row(batch, row, col, m, n, c0);
    store_row(batch, row + 1u, col, m, n, c1);
    store_row(batch, row + 2u, col, m, n, c2);
    store_row(batch, row + 3u, col, m, n, c3);
}

fn store_row(batch: u32, row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {
    if (row >= m) { return; }
    let base = (batch * m + row) * n;
    if (col < n) { st_c(base + col, v.x); }
    if (col + 16u < n) { st_c(base + col + 16u, v.y); }
    if (col + 32u < n) { st_c(base + col + 32u, v.z); }
    if (col + 48u < n) { st_c(base + col + 48u, v.w); }
}
