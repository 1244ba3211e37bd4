// MatMulMulti C_w = A (M x K) · B_w (K x N_w) for up to three weights in one
// launch, A's leading dims flattened into M rows. mat_mul_epilogue.wgsl's
// tiling: 64x64 output tiles per 16x16-thread workgroup, each thread 4x4
// outputs, K in steps of 16 through workgroup memory (8 KiB). The flat
// workgroup id (x + y * num_workgroups.x, folded by the host) runs over
// output 0's tiles, then 1's, then 2's, so which weight a workgroup reads is
// uniform within it. Accumulates in f32.
// Unused weight/output slots are bound to A and a one-word dummy and never read.
// P: [M, K, count, -, N0, N1, N2, -, tiles_n0, tiles_n1, tiles_n2, tiles_m,
//     groups0, groups1, total groups]
//#bind a r
//#bind b0 r
//#bind b1 r
//#bind b2 r
//#bind c0 rw
//#bind c1 rw
//#bind c2 rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

fn ld_bw(w: u32, i: u32) -> f32 {
    if (w == 0u) { return ld_b0(i); }
    if (w == 1u) { return ld_b1(i); }
    return ld_b2(i);
}

fn st_cw(w: u32, i: u32, v: f32) {
    if (w == 0u) { st_c0(i, v); } else if (w == 1u) { st_c1(i, v); } else { st_c2(i, v); }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let kdim = pw(1u);
    var g = wg.x + wg.y * nwg.x;
    if (g >= pw(14u)) { return; }
    var w = 0u;
    if (g >= pw(12u)) {
        g -= pw(12u);
        w = 1u;
        if (g >= pw(13u)) {
            g -= pw(13u);
            w = 2u;
        }
    }
    let n = pw(4u + w);
    let tiles_n = pw(8u + w);
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
            if (bk < kdim && bc < n) { bv = ld_bw(w, bk * n + bc); }
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
    store_row(w, row, col, m, n, c0);
    store_row(w, row + 1u, col, m, n, c1);
    store_row(w, row + 2u, col, m, n, c2);
    store_row(w, row + 3u, col, m, n, c3);
}

fn store_row(w: u32, row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {
    if (row >= m) { return; }
    let i = row * n + col;
    if (col < n) { st_cw(w, i, v.x); }
    if (col + 16u < n) { st_cw(w, i + 16u, v.y); }
    if (col + 32u < n) { st_cw(w, i + 32u, v.z); }
    if (col + 48u < n) { st_cw(w, i + 48u, v.w); }
}
