// MatMulInteger for a few rows of A (decode): y[r] (1 x N, i32) = (A[r] -
// a_zp) x (B - b_zp). A 64x4 workgroup owns 64 adjacent columns (consecutive
// bytes of B's rows); its 4 thread rows split K and are summed at the end. A
// is staged 256 values at a time (centered, as i32). Flat workgroup id = row
// * tiles + tile. P as mat_mul_integer.wgsl.
//#bind a r
//#bind b r
//#bind azp r
//#bind bzp r
//#bind y rw

var<workgroup> av: array<i32, 256>;
var<workgroup> part: array<i32, 256>;

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

@compute @workgroup_size(64, 4)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = pw(1u);
    let kdim = pw(2u);
    let tiles = pw(6u);
    let g = wg.x + wg.y * nwg.x;
    let row = g / tiles;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= pw(0u)) { return; }
    let col = (g % tiles) * 64u + lid.x;
    let za = a_zero(row);
    var zb = 0;
    if (col < n) { zb = b_zero(col); }
    var acc = 0;
    for (var k0 = 0u; k0 < kdim; k0 += 256u) {
        var v = 0;
        if (k0 + li < kdim) { v = li_a(row * kdim + k0 + li) - za; }
        av[li] = v;
        workgroupBarrier();
        if (col < n) {
            let kend = min(256u, kdim - k0);
            for (var kk = lid.y; kk < kend; kk += 4u) {
                acc += av[kk] * (li_b((k0 + kk) * n + col) - zb);
            }
        }
        workgroupBarrier();
    }
    part[li] = acc;
    workgroupBarrier();
    if (lid.y == 0u && col < n) {
        si_y(row * n + col, part[lid.x] + part[64u + lid.x] + part[128u + lid.x] + part[192u + lid.x]);
    }
}
