// MatMulEpilogue C = A (M x K) * B (K x N) (+ bias[N]) (+ residual (M x N)),
// A's leading dims flattened into M rows (B is one 2-D weight). 64x64 output
// tiles per 16x16-thread workgroup, each thread 4x4 outputs, K in steps of 16
// through workgroup memory (8 KiB), as mat_mul.wgsl; the bias and residual
// are added as each output is stored. Accumulates in f32. The flat workgroup
// id (x + y * num_workgroups.x, folded by the host) is the tile index.
// Absent bias/residual are bound to A and not read (flags).
// P: [M, N, K, flags (1 bias, 2 residual), tiles_n, tiles_m]
//#bind a r
//#bind b r
//#bind bias r
//#bind res r
//#bind c rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let tiles_n = pw(4u);
    let g = wg.x + wg.y * nwg.x;
    if (g >= tiles_n * pw(5u)) { return; }
    let col0 = (g % tiles_n) * 64u;
    let row0 = (g / tiles_n) * 64u;
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
            if (gr < m && gk < kdim) { av = ld_a(gr * kdim + gk); }
            ta[e] = av;
            let bk = k0 + e / 64u;
            let bc = col0 + e % 64u;
            var bv = 0.0;
            if (bk < kdim && bc < n) { bv = ld_b(bk * n + bc); }
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
    store_row(row, col, m, n, c0);
    store_row(row + 1u, col, m, n, c1);
    store_row(row + 2u, col, m, n, c2);
    store_row(row + 3u, col, m, n, c3);
}

fn store_one(row: u32, col: u32, n: u32, v: f32) {
    let flags = pw(3u);
    let i = row * n + col;
    var y = v;
    if ((flags & 1u) != 0u) { y += ld_bias(col); }
    if ((flags & 2u) != 0u) { y += ld_res(i); }
    st_c(i, y);
}

fn store_row(row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {
    if (row >= m) { return; }
    if (col < n) { store_one(row, col, n, v.x); }
    if (col + 16u < n) { store_one(row, col + 16u, n, v.y); }
    if (col + 32u < n) { store_one(row, col + 32u, n, v.z); }
    if (col + 48u < n) { store_one(row, col + 48u, n, v.w); }
}
