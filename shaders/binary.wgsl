// Elementwise binary ops with numpy broadcasting (strides 0 on broadcast dims).
// P: [n, rank, op, kind_a(0 f32, 1 i32, 2 bool), shape[8] @4, a_stride[8] @12,
//     b_stride[8] @20, kind_b @28]
// op: 0 Add 1 Sub 2 Mul 3 Div 4 Pow 5 Mod(floor) 6 Mod(fmod) 7 Equal 8 Less
//     9 LessOrEqual 10 Greater 11 GreaterOrEqual 12 And 13 Or
//#bind a r
//#bind b r
//#bind y rw

fn pow_f32(x: f32, e: f32) -> f32 {
    if (e == 0.0) { return 1.0; }
    if (x >= 0.0) { return pow(x, e); }
    // Negative base: defined for integral exponents only (sign from parity).
    if (e != floor(e)) { return bitcast<f32>(0x7fc00000u); }
    let m = pow(-x, e);
    let odd = (abs(e) % 2.0) == 1.0;
    return select(m, -m, odd);
}

fn cmp(op: u32, lt: bool, eq: bool) -> u32 {
    switch op {
        case 7u: { return select(0u, 1u, eq); }
        case 8u: { return select(0u, 1u, lt); }
        case 9u: { return select(0u, 1u, lt || eq); }
        case 10u: { return select(0u, 1u, !lt && !eq); }
        default: { return select(0u, 1u, !lt); }
    }
}

fn bin_f32(op: u32, x: f32, z: f32) -> f32 {
    switch op {
        case 0u: { return x + z; }
        case 1u: { return x - z; }
        case 2u: { return x * z; }
        case 3u: { return x / z; }
        case 4u: { return pow_f32(x, z); }
        case 5u: {
            var r = x - z * trunc(x / z);
            if (r != 0.0 && ((r < 0.0) != (z < 0.0))) { r += z; }
            return r;
        }
        default: { return x - z * trunc(x / z); }
    }
}

fn bin_i32(op: u32, x: i32, z: i32) -> u32 {
    switch op {
        case 0u: { return bitcast<u32>(x + z); }
        case 1u: { return bitcast<u32>(x - z); }
        case 2u: { return bitcast<u32>(x * z); }
        case 3u: { return bitcast<u32>(x / z); }
        case 4u: {
            var r = 1;
            for (var k = 0; k < z; k++) { r *= x; }
            return bitcast<u32>(r);
        }
        case 5u: {
            var r = x % z;
            if (r != 0 && ((r < 0) != (z < 0))) { r += z; }
            return bitcast<u32>(r);
        }
        case 6u: { return bitcast<u32>(x % z); }
        default: { return cmp(op, x < z, x == z); }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let rank = pw(1u);
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var k = 0u; k < rank; k++) {
        let d = rank - 1u - k;
        let c = rem % pw(4u + d);
        rem = rem / pw(4u + d);
        ia += c * pw(12u + d);
        ib += c * pw(20u + d);
    }
    let op = pw(2u);
    let kind = pw(3u);
    if (op == 12u) {
        sw_y(i, select(0u, 1u, lw_a(ia) != 0u && lw_b(ib) != 0u));
    } else if (op == 13u) {
        sw_y(i, select(0u, 1u, lw_a(ia) != 0u || lw_b(ib) != 0u));
    } else if (kind == 0u) {
        // Pow may take an integer exponent.
        var z: f32;
        if (pw(28u) == 1u) { z = f32(li_b(ib)); } else { z = ld_b(ib); }
        let x = ld_a(ia);
        if (op >= 7u) { sw_y(i, cmp(op, x < z, x == z)); } else { st_y(i, bin_f32(op, x, z)); }
    } else if (kind == 1u) {
        sw_y(i, bin_i32(op, li_a(ia), li_b(ib)));
    } else {
        sw_y(i, bin_i32(op, i32(lw_a(ia)), i32(lw_b(ib))));
    }
}
