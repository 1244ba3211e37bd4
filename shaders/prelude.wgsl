// Shared by every kernel: the uniform block (binding 0) read as 32-bit words,
// and the flat thread index of 1-D dispatches (64 threads per workgroup,
// workgroup counts above the per-dimension limit folded into y).
@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 32>;

fn pw(i: u32) -> u32 { return P[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pw(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pw(i)); }
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

// Tree reductions over a 128-thread workgroup (row kernels: softmax, norms).
// Every thread of the workgroup must call them (they hold barriers).
var<workgroup> red_buf: array<f32, 128>;
fn wg_sum(lid: u32, v: f32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = 64u; s > 0u; s = s >> 1u) {
        if (lid < s) { red_buf[lid] += red_buf[lid + s]; }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}
fn wg_max(lid: u32, v: f32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = 64u; s > 0u; s = s >> 1u) {
        if (lid < s) { red_buf[lid] = max(red_buf[lid], red_buf[lid + s]); }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}
