// Correctly rounded f32 division, `div_rn(x, y)` (as the CPU reference's):
// WGSL's `/` may be off by a few ulps, which would move quantized codes at .5
// ties. The quotient is corrected one ulp at a time against exact integer
// comparisons with the midpoints between neighbouring f32 values. Included by
// the quantize kernels (`//#include div_rn`); it uses no bindings.

// Significand and exponent of a finite f32: f = sig * 2^exp (subnormals too).
fn f32_sig(f: f32) -> vec2<i32> {
    let bits = bitcast<u32>(f);
    let e = i32((bits >> 23u) & 0xffu);
    if (e == 0) { return vec2<i32>(i32(bits & 0x7fffffu), -149); }
    return vec2<i32>(i32((bits & 0x7fffffu) | 0x800000u), e - 150);
}

// x * y as (hi, lo) 32-bit halves, for x, y < 2^26.
fn mul_wide(x: u32, y: u32) -> vec2<u32> {
    let xl = x & 0xffffu;
    let xh = x >> 16u;
    let yl = y & 0xffffu;
    let yh = y >> 16u;
    let ll = xl * yl;
    let mid = xh * yl + xl * yh;
    let lo = ll + (mid << 16u);
    let carry = select(0u, 1u, lo < ll);
    return vec2<u32>(xh * yh + (mid >> 16u) + carry, lo);
}

// Sign of a - m * b, where m is the midpoint between c and the next f32 up;
// a, b, c positive and finite.
fn cmp_upper_mid(a: f32, b: f32, c: f32) -> i32 {
    let sa = f32_sig(a);
    let sb = f32_sig(b);
    let sc = f32_sig(c);
    let p = mul_wide(2u * u32(sc.x) + 1u, u32(sb.x));
    let d = sa.y - (sc.y - 1 + sb.y);
    let am = u32(sa.x);
    if (d < 0) {
        // a's significand is below 2^24 >> d: compare a >> -d with p exactly.
        if (p.x != 0u) { return -1; }
        let sh = u32(-d);
        if (sh >= 32u) { return select(-1, 0, am == 0u && p.y == 0u); }
        let q = am >> sh;
        if (q != p.y) { return select(-1, 1, q > p.y); }
        return select(0, 1, (q << sh) != am);
    }
    if (d > 40) { return 1; }
    var hi = 0u;
    var lo = am;
    let du = u32(d);
    if (du >= 32u) {
        hi = am << (du - 32u);
        lo = 0u;
    } else if (du > 0u) {
        hi = am >> (32u - du);
        lo = am << du;
    }
    if (hi != p.x) { return select(-1, 1, hi > p.x); }
    if (lo != p.y) { return select(-1, 1, lo > p.y); }
    return 0;
}

fn f32_finite(f: f32) -> bool {
    return (bitcast<u32>(f) & 0x7f800000u) != 0x7f800000u;
}

fn div_rn(x: f32, y: f32) -> f32 {
    let q = x / y;
    let a = abs(x);
    let b = abs(y);
    var c = abs(q);
    if (a == 0.0 || b == 0.0 || c == 0.0 || !f32_finite(a) || !f32_finite(b) || !f32_finite(c)) {
        return q;
    }
    for (var it = 0; it < 8; it++) {
        let odd = (bitcast<u32>(c) & 1u) == 1u;
        let up = cmp_upper_mid(a, b, c);
        if (up > 0 || (up == 0 && odd)) {
            c = bitcast<f32>(bitcast<u32>(c) + 1u);
            continue;
        }
        let below = bitcast<f32>(bitcast<u32>(c) - 1u);
        let down = cmp_upper_mid(a, b, below);
        if (down < 0 || (down == 0 && odd)) {
            c = below;
            continue;
        }
        break;
    }
    return select(c, -c, (x < 0.0) != (y < 0.0));
}
