// Cast between device word kinds. P: [n, from(0 f32, 1 i32, 2 bool), to, round_to_f16]
{{ROUND_F16}}
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let src_kind = pw(1u);
    let to = pw(2u);
    let v = x[i];
    var f: f32;
    switch src_kind {
        case 0u: { f = bitcast<f32>(v); }
        case 1u: { f = f32(bitcast<i32>(v)); }
        default: { f = f32(v); }
    }
    if (to == 0u) {
        if (src_kind == 0u && pw(3u) == 0u) { y[i] = v; return; }
        if (pw(3u) == 1u) { f = round_f16(f); }
        y[i] = bitcast<u32>(f);
    } else if (to == 1u) {
        if (src_kind == 0u) {
            // NaN casts to 0; out-of-range values saturate.
            y[i] = bitcast<u32>(select(i32(f), 0, f != f));
        } else {
            y[i] = v;
        }
    } else {
        if (src_kind == 0u) {
            y[i] = select(0u, 1u, f != 0.0);
        } else {
            y[i] = select(0u, 1u, v != 0u);
        }
    }
}
