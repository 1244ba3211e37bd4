// Fills a tensor with one element (raw bits: a word, or an f16 half). P: [n, value]
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    sw_y(i, pw(1u));
}
