// MatMulBnb4 for many rows (prefill, vision): Y (M x N) = A (M x K) x
// dequant(B)^T in 64x64 output tiles per 16x16-thread workgroup, each thread
// 4x4 outputs, K in steps of 16 through workgroup memory (as mat_mul.wgsl),
// B dequantized as its tile is loaded. B: logical [N, K] flattened, two codes
// per byte (high nibble first), one absmax per `block` flattened elements,
// codes through the FP4/NF4 table in P.
// P: [M, N, K, block, tiles_n, -, -, -, table[16] @16]
//#bind a r
//#bind b r
//#bind absmax r
//#bind y rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

fn code(i: u32) -> u32 {
    return (lw_b(i >> 1u) >> (4u - (i & 1u) * 4u)) & 15u;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let bs = pw(3u);
    let tiles_n = pw(4u);
    let g = wg.x + wg.y * nwg.x;
    let col0 = (g % tiles_n) * 64u;
    let row0 = (g / tiles_n) * 64u;
    if (row0 >= m) { return; }
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
            // B tile element (k = e / 64, column = e % 64).
            let bk = k0 + e / 64u;
            let bc = col0 + e % 64u;
            var bv = 0.0;
            if (bk < kdim && bc < n) {
                let i = bc * kdim + bk;
                bv = pf(16u + code(i)) * ld_absmax(i / bs);
            }
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

fn store_row(row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {
    if (row >= m) { return; }
    let base = row * n;
    if (col < n) { st_y(base + col, v.x); }
    if (col + 16u < n) { st_y(base + col + 16u, v.y); }
    if (col + 32u < n) { st_y(base + col + 32u, v.z); }
    if (col + 48u < n) { st_y(base + col + 48u, v.w); }
}
