// Reductions over any set of axes: one thread per output element walks the
// reduced elements. P: [n_out, kept_rank, red_rank, n_red, kind(0 mean 1 sum
// 2 max 3 min 4 prod), is_int, -, -, kept_shape[8] @8, kept_stride[8] @16,
// red_shape[8] @24, red_stride[8] @32]
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let kept_rank = pw(1u);
    let red_rank = pw(2u);
    let n_red = pw(3u);
    let kind = pw(4u);
    let is_int = pw(5u) == 1u;
    var rem = i;
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
    for (var j = 0u; j < n_red; j++) {
        var r = j;
        var off = base;
        for (var k = 0u; k < red_rank; k++) {
            let d = red_rank - 1u - k;
            off += (r % pw(24u + d)) * pw(32u + d);
            r = r / pw(24u + d);
        }
        if (is_int) {
            let v = bitcast<i32>(x[off]);
            switch kind {
                case 2u: { acci = max(acci, v); }
                case 3u: { acci = min(acci, v); }
                case 4u: { acci *= v; }
                default: { acci += v; }
            }
        } else {
            let v = bitcast<f32>(x[off]);
            switch kind {
                case 2u: { accf = max(accf, v); }
                case 3u: { accf = min(accf, v); }
                case 4u: { accf *= v; }
                default: { accf += v; }
            }
        }
    }
    if (is_int) {
        if (kind == 0u && n_red > 0u) { acci = acci / i32(n_red); }
        y[i] = bitcast<u32>(acci);
    } else {
        if (kind == 0u) { accf = accf / f32(n_red); }
        y[i] = bitcast<u32>(accf);
    }
}
