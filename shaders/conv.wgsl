// 2-D convolution (NCHW, grouped, strided, dilated, padded), one thread per
// output element. The SigLIP patch embedding (kernel = stride = 16) is the
// case that matters; the loop is general.
// P: [n_out, Cin, H, W, Cout, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, group, has_bias]
//#bind x r
//#bind w r
//#bind bias r
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let cin = pw(1u);
    let h = pw(2u);
    let wd = pw(3u);
    let cout = pw(4u);
    let oh_n = pw(5u);
    let ow_n = pw(6u);
    let kh_n = pw(7u);
    let kw_n = pw(8u);
    let ow = i % ow_n;
    let oh = (i / ow_n) % oh_n;
    let oc = (i / (ow_n * oh_n)) % cout;
    let nb = i / (ow_n * oh_n * cout);
    let cpg = cin / pw(15u);
    let g = oc / (cout / pw(15u));
    var acc = 0.0;
    for (var ic = 0u; ic < cpg; ic++) {
        let xc = ((nb * cin + g * cpg + ic) * h) * wd;
        let wc = (oc * cpg + ic) * kh_n * kw_n;
        for (var kh = 0u; kh < kh_n; kh++) {
            let ih = i32(oh * pw(9u) + kh * pw(13u)) - i32(pw(11u));
            if (ih < 0 || ih >= i32(h)) { continue; }
            for (var kw = 0u; kw < kw_n; kw++) {
                let iw = i32(ow * pw(10u) + kw * pw(14u)) - i32(pw(12u));
                if (iw < 0 || iw >= i32(wd)) { continue; }
                acc = fma(ld_x(xc + u32(ih) * wd + u32(iw)), ld_w(wc + kh * kw_n + kw), acc);
            }
        }
    }
    if (pw(16u) == 1u) { acc += ld_bias(oc); }
    st_y(i, acc);
}
