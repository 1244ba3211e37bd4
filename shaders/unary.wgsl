// Elementwise unary ops on 32-bit words. P: [n, op, kind(0 f32, 1 i32, 2 bool)]
// op: 0 Identity 1 Neg 2 Sqrt 3 Reciprocal 4 Sigmoid 5 Tanh 6 Cos 7 Sin 8 Exp
//     9 Log 10 Abs 11 Relu 12 Erf 13 Not
//#bind x r
//#bind y rw

// erf: Maclaurin series near 0 (keeps relative accuracy for small x), and
// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7) further out.
fn erf_f32(v: f32) -> f32 {
    let a = abs(v);
    if (a < 1.5) {
        let x2 = v * v;
        var term = v;
        var sum = v;
        for (var n = 1; n < 32; n++) {
            term = -term * x2 / f32(n);
            sum += term / f32(2 * n + 1);
        }
        return sum * 1.1283791670955126;
    }
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-a * a));
}

fn unary_f32(op: u32, v: f32) -> f32 {
    switch op {
        case 1u: { return -v; }
        case 2u: { return sqrt(v); }
        case 3u: { return 1.0 / v; }
        case 4u: { return 1.0 / (1.0 + exp(-v)); }
        // tanh saturates to ±1 in f32 well before |x| = 15; clamping avoids inf/inf.
        case 5u: { return tanh(clamp(v, -15.0, 15.0)); }
        case 6u: { return cos(v); }
        case 7u: { return sin(v); }
        case 8u: { return exp(v); }
        case 9u: { return log(v); }
        case 10u: { return abs(v); }
        case 11u: { return max(v, 0.0); }
        case 12u: { return erf_f32(v); }
        default: { return v; }
    }
}

fn unary_i32(op: u32, v: i32) -> i32 {
    switch op {
        case 1u: { return -v; }
        case 10u: { return abs(v); }
        case 11u: { return max(v, 0); }
        default: { return v; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let op = pw(1u);
    let kind = pw(2u);
    if (op == 13u) {
        sw_y(i, select(0u, 1u, lw_x(i) == 0u));
    } else if (kind == 0u) {
        st_y(i, unary_f32(op, ld_x(i)));
    } else if (kind == 1u) {
        si_y(i, unary_i32(op, li_x(i)));
    } else {
        sw_y(i, lw_x(i));
    }
}
