// Batched MatMul C[b] = A[b] (M x K) * B[b] (K x N) with 16x16 shared-memory
// tiles; workgroup (x, y, z) = (column tile, row tile, output batch).
// Broadcast batch dims have stride 0.
// P: [M, N, K, batch_rank, batch_shape[8] @4, a_batch_stride[8] @12, b_batch_stride[8] @20]
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let brank = pw(3u);
    var rem = wg.z;
    var aoff = 0u;
    var boff = 0u;
    for (var k = 0u; k < brank; k++) {
        let d = brank - 1u - k;
        let co = rem % pw(4u + d);
        rem = rem / pw(4u + d);
        aoff += co * pw(12u + d);
        boff += co * pw(20u + d);
    }
    let row = wg.y * 16u + lid.y;
    let col = wg.x * 16u + lid.x;
    var acc = 0.0;
    for (var t = 0u; t < kdim; t += 16u) {
        let ak = t + lid.x;
        var av = 0.0;
        if (row < m && ak < kdim) { av = a[aoff + row * kdim + ak]; }
        ta[lid.y][lid.x] = av;
        let bk = t + lid.y;
        var bv = 0.0;
        if (bk < kdim && col < n) { bv = b[boff + bk * n + col]; }
        tb[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            acc = fma(ta[lid.y][kk], tb[kk][lid.x], acc);
        }
        workgroupBarrier();
    }
    if (row < m && col < n) {
        c[(wg.z * m + row) * n + col] = acc;
    }
}
