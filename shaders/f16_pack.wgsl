// Narrows f32 words to packed f16 (two per u32 word); one thread per word. P: [n]
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = flat_id(gid, nwg);
    let n = pw(0u);
    if (2u * w >= n) { return; }
    var hi = 0.0;
    if (2u * w + 1u < n) { hi = src[2u * w + 1u]; }
    dst[w] = pack2x16float(vec2<f32>(src[2u * w], hi));
}
