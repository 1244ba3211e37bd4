// First stage of DynamicQuantizeLinear, one 256-thread workgroup: the range
// [min(0, min x), max(0, max x)] of f32 x, then as onnxruntime: scale =
// (max - min) / 255 (1 when the range is empty), zero point =
// round_half_even(clamp(-min / scale, 0, 255)). The quantize stage
// (quantize.wgsl) reads both back from the device.
// P: [n]
//#bind x r
//#bind scale rw
//#bind zp rw

var<workgroup> lo_buf: array<f32, 256>;
var<workgroup> hi_buf: array<f32, 256>;

//#include div_rn

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    let n = pw(0u);
    var mn = 0.0;
    var mx = 0.0;
    for (var i = li; i < n; i += 256u) {
        let v = ld_x(i);
        mn = min(mn, v);
        mx = max(mx, v);
    }
    lo_buf[li] = mn;
    hi_buf[li] = mx;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (li < s) {
            lo_buf[li] = min(lo_buf[li], lo_buf[li + s]);
            hi_buf[li] = max(hi_buf[li], hi_buf[li + s]);
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let lo = lo_buf[0];
        let hi = hi_buf[0];
        var scale = 1.0;
        if (hi != lo) { scale = div_rn(hi - lo, 255.0); }
        let z = round(clamp(0.0 - div_rn(lo, scale), 0.0, 255.0));
        st_scale(0u, scale);
        sw_zp(0u, u32(z));
    }
}
