// MatMulMultiRotary for a few rows (the decode steps): c_w = a (M x K) · B_w
// (K x N_w) for two or three weights in one launch, with the rotary of
// outputs 0 and 1 applied in registers before the store. As
// mat_mul_multi_gemv.wgsl: a 16x16 workgroup owns 16 work items of one
// output and one row of A; its 16 thread rows split K and are summed at the
// end. A rotated output's items are first its (head, pair) pairs, each thread
// accumulating both columns of its pair (h*D + j and + half, or h*D + 2j and
// + 1 interleaved) so it can rotate them; then the channels past the rotary
// dim, one column each. Output 2 (values) is one column per item. The flat
// workgroup id runs over row 0's tiles (output 0's, then 1's, then 2's), then
// row 1's, so weight and row are uniform within a workgroup. Positions come
// in the uniforms (checked against max_pos on the host). cs is the merged
// [max_pos, 2C] cache: row p holds C cos values, then C sin values.
// Unused weight/output slots are bound to A and a one-word dummy and never read.
// P: [M, K, count, tiles per row, N0, N1, N2, tiles0, tiles1, tiles2,
//     half, C, interleaved, head_size0, head_size1, rotary_dim,
//     16 + r: position of row r]
//#bind a r
//#bind b0 r
//#bind b1 r
//#bind b2 r
//#bind cs r
//#bind c0 rw
//#bind c1 rw
//#bind c2 rw

var<workgroup> av: array<f32, 256>;
var<workgroup> part0: array<f32, 256>;
var<workgroup> part1: array<f32, 256>;

fn st_cw(w: u32, i: u32, v: f32) {
    if (w == 0u) { st_c0(i, v); } else if (w == 1u) { st_c1(i, v); } else { st_c2(i, v); }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let kdim = pw(1u);
    let tiles = pw(3u);
    var g = wg.x + wg.y * nwg.x;
    // Whole workgroups leave together (the barriers below need all threads).
    if (g >= tiles * pw(0u)) { return; }
    let row = g / tiles;
    g = g % tiles;
    var w = 0u;
    if (g >= pw(7u)) {
        g -= pw(7u);
        w = 1u;
        if (g >= pw(8u)) {
            g -= pw(8u);
            w = 2u;
        }
    }
    let n = pw(4u + w);
    let item = g * 16u + lid.x;
    let half = pw(10u);
    // Columns of this item; pair: col1 is the rotation partner of col0.
    var col0 = item;
    var col1 = item;
    var j = 0u;
    var pair = false;
    var valid = false;
    if (w < 2u) {
        let hs = pw(13u + w);
        let rd = pw(15u);
        let heads = n / hs;
        let npairs = heads * half;
        if (item < npairs) {
            let h = item / half;
            j = item % half;
            if (pw(12u) == 1u) {
                col0 = h * hs + 2u * j;
                col1 = col0 + 1u;
            } else {
                col0 = h * hs + j;
                col1 = col0 + half;
            }
            pair = true;
            valid = true;
        } else {
            let rest = hs - rd;
            let q = item - npairs;
            if (rest > 0u && q < heads * rest) {
                col0 = (q / rest) * hs + rd + q % rest;
                col1 = col0;
                valid = true;
            }
        }
    } else {
        valid = item < n;
    }
    let abase = row * kdim;
    var acc0 = 0.0;
    var acc1 = 0.0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0.0;
        if (k0 + li < kdim) { v = ld_a(abase + k0 + li); }
        av[li] = v;
        workgroupBarrier();
        if (valid) {
            let kend = min(256u, kdim - k0);
            // One loop per weight keeps the branch out of the inner loop.
            if (w == 0u) {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    let r = (k0 + kk) * n;
                    acc0 = fma(av[kk], ld_b0(r + col0), acc0);
                    acc1 = fma(av[kk], ld_b0(r + col1), acc1);
                }
            } else if (w == 1u) {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    let r = (k0 + kk) * n;
                    acc0 = fma(av[kk], ld_b1(r + col0), acc0);
                    acc1 = fma(av[kk], ld_b1(r + col1), acc1);
                }
            } else {
                for (var kk = lid.y; kk < kend; kk += 16u) {
                    acc0 = fma(av[kk], ld_b2((k0 + kk) * n + col0), acc0);
                }
            }
        }
        workgroupBarrier();
    }
    part0[li] = acc0;
    part1[li] = acc1;
    workgroupBarrier();
    if (lid.y == 0u && valid) {
        var x0 = 0.0;
        var x1 = 0.0;
        for (var r = 0u; r < 16u; r++) {
            x0 += part0[r * 16u + lid.x];
            x1 += part1[r * 16u + lid.x];
        }
        let obase = row * n;
        if (pair) {
            let cbase = pw(16u + row) * 2u * pw(11u);
            let c = ld_cs(cbase + j);
            let sn = ld_cs(cbase + pw(11u) + j);
            st_cw(w, obase + col0, x0 * c - x1 * sn);
            st_cw(w, obase + col1, x1 * c + x0 * sn);
        } else {
            st_cw(w, obase + col0, x0);
        }
    }
}
