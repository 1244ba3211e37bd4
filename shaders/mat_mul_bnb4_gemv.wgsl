// MatMulBnb4 for a few rows of A (decode): y[r] = A[r] (1 x K) x dequant(B)^T.
// B is logical [N, K] row-major, flattened, two 4-bit codes per byte (the
// first element in the high nibble), one absmax per `block` elements of the
// flattened B; codes map through the 16-entry FP4/NF4 table passed in P.
// A 256-thread workgroup owns 8 columns, 32 lanes per column over K; A is
// staged 1024 values at a time. Flat workgroup id = row * tiles + tile.
// P: [rows, N, K, block, tiles, -, -, -, table[16] @16]
//#bind a r
//#bind b r
//#bind absmax r
//#bind y rw

var<workgroup> av: array<f32, 1024>;
var<workgroup> part: array<f32, 256>;

// Code of flattened element i (high nibble first).
fn code(i: u32) -> u32 {
    return (lw_b(i >> 1u) >> (4u - (i & 1u) * 4u)) & 15u;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let bs = pw(3u);
    let tiles = pw(4u);
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
            let kend = min(1024u, kdim - k0);
            for (var kk = lane; kk < kend; kk += 32u) {
                let i = col * kdim + k0 + kk;
                acc = fma(pf(16u + code(i)) * ld_absmax(i / bs), av[kk], acc);
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
        st_y(row * n + col, part[li]);
    }
}
