// MatMulInteger: Y (rows x N, i32) = (A - a_zp) (rows x K) x (B - b_zp)
// (K x N), u8/i8 operands (byte-stored) widened to i32 (the accessors zero- or
// sign-extend), i32 accumulation (wrapping like onnxruntime's). 64x64 output
// tiles per 16x16-thread workgroup, each thread 4x4 outputs, K in steps of 16
// through workgroup memory. A's rows are its flattened leading dims; a
// per-row zero point indexes row % M (the second-to-last dim).
// P: [rows, N, K, M, a_zp(0 none, 1 scalar, 2 per row), b_zp(0 none, 1
//     scalar, 2 per column), tiles_n]
//#bind a r
//#bind b r
//#bind azp r
//#bind bzp r
//#bind y rw

var<workgroup> ta: array<i32, 1024>;
var<workgroup> tb: array<i32, 1024>;

fn a_zero(row: u32) -> i32 {
    let mode = pw(4u);
    if (mode == 1u) { return li_azp(0u); }
    if (mode == 2u) { return li_azp(row % pw(3u)); }
    return 0;
}

fn b_zero(col: u32) -> i32 {
    let mode = pw(5u);
    if (mode == 1u) { return li_bzp(0u); }
    if (mode == 2u) { return li_bzp(col); }
    return 0;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let tiles_n = pw(6u);
    let g = wg.x + wg.y * nwg.x;
    let col0 = (g % tiles_n) * 64u;
    let row0 = (g / tiles_n) * 64u;
    if (row0 >= m) { return; }
    var c0 = vec4<i32>(0);
    var c1 = vec4<i32>(0);
    var c2 = vec4<i32>(0);
    var c3 = vec4<i32>(0);
    for (var k0 = 0u; k0 < kdim; k0 += 16u) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 256u;
            let gr = row0 + e / 16u;
            let gk = k0 + e % 16u;
            var av = 0;
            if (gr < m && gk < kdim) { av = li_a(gr * kdim + gk) - a_zero(gr); }
            ta[e] = av;
            let bk = k0 + e / 64u;
            let bc = col0 + e % 64u;
            var bv = 0;
            if (bk < kdim && bc < n) { bv = li_b(bk * n + bc) - b_zero(bc); }
            tb[e] = bv;
        }
        workgroupBarrier();
        let ra = lid.y * 64u;
        for (var kk = 0u; kk < 16u; kk++) {
            let tbo = kk * 64u + lid.x;
            let bv = vec4<i32>(tb[tbo], tb[tbo + 16u], tb[tbo + 32u], tb[tbo + 48u]);
            c0 += ta[ra + kk] * bv;
            c1 += ta[ra + 16u + kk] * bv;
            c2 += ta[ra + 32u + kk] * bv;
            c3 += ta[ra + 48u + kk] * bv;
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

fn store_row(row: u32, col: u32, m: u32, n: u32, v: vec4<i32>) {
    if (row >= m) { return; }
    let base = row * n;
    if (col < n) { si_y(base + col, v.x); }
    if (col + 16u < n) { si_y(base + col + 16u, v.y); }
    if (col + 32u < n) { si_y(base + col + 32u, v.z); }
    if (col + 48u < n) { si_y(base + col + 48u, v.w); }
}
