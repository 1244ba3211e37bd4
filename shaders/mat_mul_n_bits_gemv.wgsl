// MatMulNBits (4-bit) for a few rows of A (decode): y[r] = A[r] (1 x K) x
// dequant(B)^T, B given per output column as K/2 packed bytes. A 256-thread
// workgroup owns 8 columns; 32 lanes per column walk the column's packed words
// (8 codes each, consecutive lanes -> consecutive words), dequantize in
// registers and are summed at the end. A is staged 1024 values at a time.
// Codes past K (the zero-padded tail of the last block) meet staged zeros.
// Flat workgroup id = row * tiles + tile.
// P: [rows, N, K, block, blocks, zp_mode(0 none = 8, 1 packed u8, 2 float),
//     has_bias, tiles, words_per_column, zp_bytes_per_column]
//#bind a r
//#bind b r
//#bind scales r
//#bind zp r
//#bind bias r
//#bind y rw

var<workgroup> av: array<f32, 1024>;
var<workgroup> part: array<f32, 256>;

fn zero_point(col: u32, blk: u32) -> f32 {
    let mode = pw(5u);
    if (mode == 1u) {
        let byte = lw_zp(col * pw(9u) + blk / 2u);
        return f32((byte >> ((blk & 1u) * 4u)) & 15u);
    }
    if (mode == 2u) { return ld_zp(col * pw(4u) + blk); }
    return 8.0;
}

fn nibbles(w: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>(f32((w >> shift) & 15u), f32((w >> (shift + 8u)) & 15u),
                     f32((w >> (shift + 16u)) & 15u), f32((w >> (shift + 24u)) & 15u));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let bs = pw(3u);
    let blocks = pw(4u);
    let tiles = pw(7u);
    let wpc = pw(8u);
    let g = wg.x + wg.y * nwg.x;
    let row = g / tiles;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= pw(0u)) { return; }
    let col = (g % tiles) * 8u + li / 32u;
    let lane = li % 32u;
    var acc = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 1024u) {
        for (var e = li; e < 1024u; e += 256u) {
            var v = 0.0;
            if (k0 + e < kdim) { v = ld_a(row * kdim + k0 + e); }
            av[e] = v;
        }
        workgroupBarrier();
        if (col < n) {
            let words = min(128u, (kdim - k0 + 7u) / 8u);
            for (var wl = lane; wl < words; wl += 32u) {
                let w = k0 / 8u + wl;
                let blk = (w * 8u) / bs;
                let z = zero_point(col, blk);
                let q = lq_b(col * wpc + w);
                let base = wl * 8u;
                // Even codes sit in the low nibbles: elements 0,2,4,6 and 1,3,5,7.
                let ev = nibbles(q, 0u) - vec4<f32>(z);
                let od = nibbles(q, 4u) - vec4<f32>(z);
                let ae = vec4<f32>(av[base], av[base + 2u], av[base + 4u], av[base + 6u]);
                let ao = vec4<f32>(av[base + 1u], av[base + 3u], av[base + 5u], av[base + 7u]);
                acc = fma(dot(ev, ae) + dot(od, ao), ld_scales(col * blocks + blk), acc);
            }
        }
        workgroupBarrier();
    }
    part[li] = acc;
    workgroupBarrier();
    for (var s = 16u; s > 0u; s = s >> 1u) {
        if (lane < s) { part[li] += part[li + s]; }
        workgroupBarrier();
    }
    if (lane == 0u && col < n) {
        var v = part[li];
        if (pw(6u) == 1u) { v += ld_bias(col); }
        st_y(row * n + col, v);
    }
}
