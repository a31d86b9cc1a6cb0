// accumulate: a micro-batch's gradient added into the parameter's gradient
// buffer, which sums the micro-batches of an optimizer step (the optimizer
// step reads and zeroes it).
// Inputs:  x [COUNT] f32
// Output:  sum [COUNT] f32, read and written in place
const COUNT: u32 = {{COUNT}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index < COUNT) {
        sum[index] += x[index];
    }
}
