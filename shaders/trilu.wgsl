// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of each
// matrix, zeroing the rest. P: [n, rows, cols, k(i32), upper]
//#bind x r
//#bind y rw

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    let cols = pw(2u);
    let c = i32(i % cols);
    let r = i32((i / cols) % pw(1u));
    let k = pi(3u);
    var keep: bool;
    if (pw(4u) == 1u) { keep = c - r >= k; } else { keep = c - r <= k; }
    sw_y(i, select(0u, lw_x(i), keep));
}
