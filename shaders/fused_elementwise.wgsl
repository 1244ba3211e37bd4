// FusedElementwise: interprets a register program (from the uniform block)
// per output element, inputs broadcast by strides. See
// crates/cellm-gpu/src/ops/fused_elementwise.rs for the layout:
// P: [n, rank, n_in | out_reg << 8, code_len] @0, shape[8] @4,
//    strides[8] of input k @12 + 8k, code @60 (op | dst<<8 | a<<16 | b<<24;
//    op 0 = Const, its f32 bits in the next word)
// op: 0 Const 1 Neg 2 Abs 3 Sqrt 4 Reciprocal 5 Exp 6 Log 7 Sigmoid 8 Tanh
//     9 Erf 10 Relu 11 Cos 12 Sin 16 Add 17 Sub 18 Mul 19 Div 20 Pow
//#bind x0 r
//#bind x1 r
//#bind x2 r
//#bind x3 r
//#bind x4 r
//#bind x5 r
//#bind y rw

// As unary.wgsl: Maclaurin series near 0, Abramowitz-Stegun 7.1.26 beyond.
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

// As binary.wgsl: negative bases only for integral exponents.
fn pow_f32(x: f32, e: f32) -> f32 {
    if (e == 0.0) { return 1.0; }
    if (x >= 0.0) { return pow(x, e); }
    if (e != floor(e)) { return bitcast<f32>(0x7fc00000u); }
    let m = pow(-x, e);
    let odd = (abs(e) % 2.0) == 1.0;
    return select(m, -m, odd);
}

fn apply(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case 1u: { return -a; }
        case 2u: { return abs(a); }
        case 3u: { return sqrt(a); }
        case 4u: { return 1.0 / a; }
        case 5u: { return exp(a); }
        case 6u: { return log(a); }
        case 7u: { return 1.0 / (1.0 + exp(-a)); }
        // tanh saturates to ±1 in f32 well before |x| = 15; clamping avoids inf/inf.
        case 8u: { return tanh(clamp(a, -15.0, 15.0)); }
        case 9u: { return erf_f32(a); }
        // Keeps NaN, as ONNX Relu.
        case 10u: { return select(a, 0.0, a < 0.0); }
        case 11u: { return cos(a); }
        case 12u: { return sin(a); }
        case 16u: { return a + b; }
        case 17u: { return a - b; }
        case 18u: { return a * b; }
        case 19u: { return a / b; }
        default: { return pow_f32(a, b); }
    }
}

fn load(k: u32, o: u32) -> f32 {
    switch k {
        case 0u: { return ld_x0(o); }
        case 1u: { return ld_x1(o); }
        case 2u: { return ld_x2(o); }
        case 3u: { return ld_x3(o); }
        case 4u: { return ld_x4(o); }
        default: { return ld_x5(o); }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let rank = pw(1u);
    let n_in = pw(2u) & 0xffu;
    var off: array<u32, 6>;
    var rem = i;
    for (var k = 0u; k < rank; k++) {
        let d = rank - 1u - k;
        let c = rem % pw(4u + d);
        rem = rem / pw(4u + d);
        for (var s = 0u; s < n_in; s++) {
            off[s] += c * pw(12u + 8u * s + d);
        }
    }
    var r: array<f32, 16>;
    for (var s = 0u; s < n_in; s++) {
        r[s] = load(s, off[s]);
    }
    let len = pw(3u);
    var pc = 0u;
    loop {
        if (pc >= len) { break; }
        let w = pw(60u + pc);
        let op = w & 0xffu;
        let dst = (w >> 8u) & 15u;
        if (op == 0u) {
            r[dst] = pf(61u + pc);
            pc += 2u;
        } else {
            r[dst] = apply(op, r[(w >> 16u) & 15u], r[(w >> 24u) & 15u]);
            pc += 1u;
        }
    }
    st_y(i, r[(pw(2u) >> 8u) & 15u]);
}
