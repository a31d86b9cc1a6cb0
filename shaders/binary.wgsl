// binary: element-wise a + b, where b repeats every B_LEN elements
// (B_LEN = COUNT for a sum of two equal shapes; B_LEN = n for a bias over the
// last axis of an [m, n] matrix).
// Inputs:  a [COUNT] f32, b [B_LEN] f32
// Output:  out [COUNT] f32
const COUNT: u32 = {{COUNT}}u;
const B_LEN: u32 = {{B_LEN}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= COUNT) {
        return;
    }
    out[index] = a[index] + b[index % B_LEN];
}
