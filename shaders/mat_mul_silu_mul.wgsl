// MatMulSiluMul Y = silu(A·Wg)·(A·Wu), A (M x K) with its leading dims
// flattened into M rows, Wg and Wu (K x N). mat_mul_epilogue.wgsl's tiling
// with two B tiles: 64x64 output tiles per 16x16-thread workgroup, each
// thread 4x4 outputs of both products, K in steps of 16 through workgroup
// memory (12 KiB); the activation is applied as each output is stored.
// Accumulates in f32. The flat workgroup id (x + y * num_workgroups.x,
// folded by the host) is the tile index.
// P: [M, N, K, -, tiles_n, tiles_m]
//#bind a r
//#bind wgate r
//#bind wup r
//#bind y rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tg: array<f32, 1024>;
var<workgroup> tu: array<f32, 1024>;

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
    var d0 = vec4<f32>(0.0);
    var d1 = vec4<f32>(0.0);
    var d2 = vec4<f32>(0.0);
    var d3 = vec4<f32>(0.0);
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
            var gv = 0.0;
            var uv = 0.0;
            if (bk < kdim && bc < n) {
                gv = ld_wgate(bk * n + bc);
                uv = ld_wup(bk * n + bc);
            }
            tg[e] = gv;
            tu[e] = uv;
        }
        workgroupBarrier();
        let ra = lid.y * 64u;
        for (var kk = 0u; kk < 16u; kk++) {
            let tbo = kk * 64u + lid.x;
            let gv = vec4<f32>(tg[tbo], tg[tbo + 16u], tg[tbo + 32u], tg[tbo + 48u]);
            let uv = vec4<f32>(tu[tbo], tu[tbo + 16u], tu[tbo + 32u], tu[tbo + 48u]);
            let a0 = vec4<f32>(ta[ra + kk]);
            let a1 = vec4<f32>(ta[ra + 16u + kk]);
            let a2 = vec4<f32>(ta[ra + 32u + kk]);
            let a3 = vec4<f32>(ta[ra + 48u + kk]);
            c0 = fma(a0, gv, c0);
            c1 = fma(a1, gv, c1);
            c2 = fma(a2, gv, c2);
            c3 = fma(a3, gv, c3);
            d0 = fma(a0, uv, d0);
            d1 = fma(a1, uv, d1);
            d2 = fma(a2, uv, d2);
            d3 = fma(a3, uv, d3);
        }
        workgroupBarrier();
    }
    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x;
    store_row(row, col, m, n, c0, d0);
    store_row(row + 1u, col, m, n, c1, d1);
    store_row(row + 2u, col, m, n, c2, d2);
    store_row(row + 3u, col, m, n, c3, d3);
}

fn silu_mul(g: f32, u: f32) -> f32 {
    // Clamped so exp stays finite; sigmoid has saturated well before ±80.
    return g * u / (1.0 + exp(clamp(-g, -80.0, 80.0)));
}

fn store_row(row: u32, col: u32, m: u32, n: u32, g: vec4<f32>, u: vec4<f32>) {
    if (row >= m) { return; }
    let i = row * n + col;
    if (col < n) { st_y(i, silu_mul(g.x, u.x)); }
    if (col + 16u < n) { st_y(i + 16u, silu_mul(g.y, u.y)); }
    if (col + 32u < n) { st_y(i + 32u, silu_mul(g.z, u.z)); }
    if (col + 48u < n) { st_y(i + 48u, silu_mul(g.w, u.w)); }
}
