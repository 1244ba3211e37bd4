// ConvInteger (2-D, NCHW, grouped, strided, dilated, padded): y (i32) =
// conv(x - x_zp, w - w_zp) over u8/i8 x and w (byte-stored, widened by the
// accessors), one thread per output element. Padding contributes 0 (the
// centered value), as in the CPU reference. w_zp is one value or one per
// output channel.
// P: [n_out, Cin, H, W, Cout, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, group,
//     x_zp(0/1), w_zp(0 none, 1 one, 2 per channel)]
//#bind x r
//#bind w r
//#bind xzp r
//#bind wzp r
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
    var zx = 0;
    if (pw(16u) == 1u) { zx = li_xzp(0u); }
    var zw = 0;
    if (pw(17u) == 1u) { zw = li_wzp(0u); }
    if (pw(17u) == 2u) { zw = li_wzp(oc); }
    var acc = 0;
    for (var ic = 0u; ic < cpg; ic++) {
        let xc = ((nb * cin + g * cpg + ic) * h) * wd;
        let wc = (oc * cpg + ic) * kh_n * kw_n;
        for (var kh = 0u; kh < kh_n; kh++) {
            let ih = i32(oh * pw(9u) + kh * pw(13u)) - i32(pw(11u));
            if (ih < 0 || ih >= i32(h)) { continue; }
            for (var kw = 0u; kw < kw_n; kw++) {
                let iw = i32(ow * pw(10u) + kw * pw(14u)) - i32(pw(12u));
                if (iw < 0 || iw >= i32(wd)) { continue; }
                acc += (li_x(xc + u32(ih) * wd + u32(iw)) - zx) * (li_w(wc + kh * kw_n + kw) - zw);
            }
        }
    }
    si_y(i, acc);
}
