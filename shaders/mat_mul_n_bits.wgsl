// MatMulNBits (4-bit) for many rows (prefill, vision): Y (M x N) = A (M x K)
// x dequant(B)^T in 64x64 output tiles per 16x16-thread workgroup, each
// thread 4x4 outputs, K in steps of 16 through workgroup memory (as
// mat_mul.wgsl). The B tile is 64 columns x 16 codes = two packed words per
// column, dequantized on load (a 16-step lies in one block: blocks are powers
// of two >= 16). A is zero past K, so the padded tail of the last block adds 0.
// P: [M, N, K, block, blocks, zp_mode(0 none = 8, 1 packed u8, 2 float),
//     has_bias, tiles_n, words_per_column, zp_bytes_per_column]
//#bind a r
//#bind b r
//#bind scales r
//#bind zp r
//#bind bias r
//#bind y rw

var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

fn zero_point(col: u32, blk: u32) -> f32 {
    let mode = pw(5u);
    if (mode == 1u) {
        let byte = lw_zp(col * pw(9u) + blk / 2u);
        return f32((byte >> ((blk & 1u) * 4u)) & 15u);
    }
    if (mode == 2u) { return ld_zp(col * pw(4u) + blk); }
    return 8.0;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m = pw(0u);
    let n = pw(1u);
    let kdim = pw(2u);
    let bs = pw(3u);
    let tiles_n = pw(7u);
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
        }
        if (li < 128u) {
            let c = li / 2u;
            let half = li % 2u;
            let col = col0 + c;
            if (col < n) {
                let blk = k0 / bs;
                let s = ld_scales(col * pw(4u) + blk);
                let z = zero_point(col, blk);
                let q = lq_b(col * pw(8u) + k0 / 8u + half);
                for (var j = 0u; j < 8u; j++) {
                    tb[(half * 8u + j) * 64u + c] = (f32((q >> (4u * j)) & 15u) - z) * s;
                }
            } else {
                for (var j = 0u; j < 8u; j++) { tb[(half * 8u + j) * 64u + c] = 0.0; }
            }
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

fn bias_of(col: u32) -> f32 {
    if (pw(6u) == 1u) { return ld_bias(col); }
    return 0.0;
}

fn store_row(row: u32, col: u32, m: u32, n: u32, v: vec4<f32>) {
    if (row >= m) { return; }
    let base = row * n;
    if (col < n) { st_y(base + col, v.x + bias_of(col)); }
    if (col + 16u < n) { st_y(base + col + 16u, v.y + bias_of(col + 16u)); }
    if (col + 32u < n) { st_y(base + col + 32u, v.z + bias_of(col + 32u)); }
    if (col + 48u < n) { st_y(base + col + 48u, v.w + bias_of(col + 48u)); }
}
