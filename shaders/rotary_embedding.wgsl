// com.microsoft RotaryEmbedding: rotates the first rotary_dim channels of each
// head; `out` already holds a copy of x. One thread per (b, s, h, pair).
// P: [n, seq, heads, half, seq_stride, head_stride, batch_stride, half_cache,
//     interleaved, pos_scalar, max_pos]
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read> cos_cache: array<f32>;
@group(0) @binding(4) var<storage, read> sin_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let seq = pw(1u);
    let heads = pw(2u);
    let half = pw(3u);
    let k = i % half;
    let h = (i / half) % heads;
    let s = (i / (half * heads)) % seq;
    let b = i / (half * heads * seq);
    var p: i32;
    if (pw(9u) == 1u) { p = pos[0] + i32(s); } else { p = pos[b * seq + s]; }
    if (p < 0 || u32(p) >= pw(10u)) { return; }
    let c = cos_cache[u32(p) * pw(7u) + k];
    let sn = sin_cache[u32(p) * pw(7u) + k];
    let base = b * pw(6u) + s * pw(4u) + h * pw(5u);
    var i0 = k;
    var i1 = k + half;
    if (pw(8u) == 1u) { i0 = 2u * k; i1 = 2u * k + 1u; }
    let x0 = x[base + i0];
    let x1 = x[base + i1];
    out[base + i0] = x0 * c - x1 * sn;
    out[base + i1] = x1 * c + x0 * sn;
}
