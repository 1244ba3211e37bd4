// QuantizeLinear, and the second stage of DynamicQuantizeLinear:
// y = saturate(round_half_even(x / scale) + zero_point) into u8/i8, with
// scale / zero point per tensor, per axis or per block along an axis. Each
// thread owns four consecutive outputs (one word of the byte-stored y).
// P: [n, x_is_int, mode(0 tensor, 1 axis, 2 block), inner, dim, block,
//     blocks, has_zp, lo(i32), hi(i32)]
//#bind x r
//#bind scale r
//#bind zp r
//#bind y rw

//#include div_rn

fn param_index(i: u32) -> u32 {
    let mode = pw(2u);
    if (mode == 0u) { return 0u; }
    let inner = pw(3u);
    let dim = pw(4u);
    let a = (i / inner) % dim;
    if (mode == 1u) { return a; }
    let outer = i / (dim * inner);
    return (outer * pw(6u) + a / pw(5u)) * inner + i % inner;
}

fn quantize_one(i: u32) -> u32 {
    var v: f32;
    if (pw(1u) == 1u) { v = f32(li_x(i)); } else { v = ld_x(i); }
    let p = param_index(i);
    var z = 0;
    if (pw(7u) == 1u) { z = li_zp(p); }
    let q = clamp(round(div_rn(v, ld_scale(p))) + f32(z), f32(pi(8u)), f32(pi(9u)));
    return bitcast<u32>(i32(q)) & 0xffu;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_id(gid, nwg);
    let n = pw(0u);
    let i0 = t * 4u;
    if (i0 >= n) { return; }
    if (i0 + 4u <= n) {
        sq_y(t, quantize_one(i0) | (quantize_one(i0 + 1u) << 8u) | (quantize_one(i0 + 2u) << 16u)
            | (quantize_one(i0 + 3u) << 24u));
    } else {
        for (var i = i0; i < n; i++) { sw_y(i, quantize_one(i)); }
    }
}
