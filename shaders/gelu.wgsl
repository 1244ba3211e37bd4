// Gelu, elementwise. P: [n, approximate (0 none = erf form, 1 tanh)]
//#bind x r
//#bind y rw

// erf: Maclaurin series near 0 (keeps relative accuracy for small x), and
// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7) further out (as unary.wgsl).
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

fn gelu(v: f32, approximate: u32) -> f32 {
    if (approximate == 1u) {
        // 0.5·x·(1 + tanh u) = x·sigmoid(2u): no cancellation for negative x.
        // Clamping 2u keeps exp finite (the sigmoid has saturated by then).
        let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
        return v / (1.0 + exp(clamp(-2.0 * u, -80.0, 80.0)));
    }
    return 0.5 * v * (1.0 + erf_f32(v * 0.7071067811865476));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    st_y(i, gelu(ld_x(i), pw(1u)));
}
