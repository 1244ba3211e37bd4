// Shared by every kernel: the uniform block (binding 0) read as 32-bit words,
// and the flat thread index of 1-D dispatches (64 threads per workgroup,
// workgroup counts above the per-dimension limit folded into y).
@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 32>;

fn pw(i: u32) -> u32 { return P[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pw(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pw(i)); }
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }
