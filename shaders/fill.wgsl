// fill: every element of a buffer set to zero, before a kernel that writes
// only some of its output (gather_backward).
// Output:  out [COUNT] f32
const COUNT: u32 = {{COUNT}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index < COUNT) {
        out[index] = 0.0;
    }
}
