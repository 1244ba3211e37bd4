// Reductions over any set of axes: one 256-thread workgroup per output
// element; each thread strides over the reduced elements, then a tree
// reduction in workgroup memory. (Besides speed, short per-thread loops keep
// clear of llvmpipe's 65535-iteration loop cap.)
// P: [n_out, kept_rank, red_rank, n_red, kind(0 mean 1 sum 2 max 3 min 4 prod),
//     is_int, -, -, kept_shape[8] @8, kept_stride[8] @16, red_shape[8] @24,
//     red_stride[8] @32]
//#bind x r
//#bind y rw

var<workgroup> sf: array<f32, 256>;
var<workgroup> si: array<i32, 256>;

fn combine_f(kind: u32, a: f32, b: f32) -> f32 {
    switch kind {
        case 2u: { return max(a, b); }
        case 3u: { return min(a, b); }
        case 4u: { return a * b; }
        default: { return a + b; }
    }
}

fn combine_i(kind: u32, a: i32, b: i32) -> i32 {
    switch kind {
        case 2u: { return max(a, b); }
        case 3u: { return min(a, b); }
        case 4u: { return a * b; }
        default: { return a + b; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let o = wg.x + wg.y * nwg.x;
    if (o >= pw(0u)) { return; }
    let kept_rank = pw(1u);
    let red_rank = pw(2u);
    let n_red = pw(3u);
    let kind = pw(4u);
    let is_int = pw(5u) == 1u;
    var rem = o;
    var base = 0u;
    for (var k = 0u; k < kept_rank; k++) {
        let d = kept_rank - 1u - k;
        base += (rem % pw(8u + d)) * pw(16u + d);
        rem = rem / pw(8u + d);
    }
    var accf = 0.0;
    var acci = 0;
    if (kind == 2u) { accf = -3.4028235e38; acci = -2147483647 - 1; }
    if (kind == 3u) { accf = 3.4028235e38; acci = 2147483647; }
    if (kind == 4u) { accf = 1.0; acci = 1; }
    for (var j = lid; j < n_red; j += 256u) {
        var r = j;
        var off = base;
        for (var k = 0u; k < red_rank; k++) {
            let d = red_rank - 1u - k;
            off += (r % pw(24u + d)) * pw(32u + d);
            r = r / pw(24u + d);
        }
        if (is_int) {
            acci = combine_i(kind, acci, li_x(off));
        } else {
            accf = combine_f(kind, accf, ld_x(off));
        }
    }
    sf[lid] = accf;
    si[lid] = acci;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if (lid < stride) {
            sf[lid] = combine_f(kind, sf[lid], sf[lid + stride]);
            si[lid] = combine_i(kind, si[lid], si[lid + stride]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        if (is_int) {
            var v = si[0];
            if (kind == 0u && n_red > 0u) { v = v / i32(n_red); }
            si_y(o, v);
        } else {
            var v = sf[0];
            if (kind == 0u) { v = v / f32(n_red); }
            st_y(o, v);
        }
    }
}
