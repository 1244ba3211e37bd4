// Rounds f32 words in place to f16 precision (outputs of f16-typed ops).
// P: [n]
{{ROUND_F16}}
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= pw(0u)) { return; }
    x[i] = round_f16(x[i]);
}
