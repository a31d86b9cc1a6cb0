// first_token: the first token row of every sequence ([CLS] / <s>).
// Inputs:  x [BATCH * SEQ, WIDTH] f32
// Output:  out [BATCH, WIDTH] f32
// One thread an output element.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const WIDTH: u32 = {{WIDTH}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * WIDTH) {
        return;
    }
    out[index] = x[(index / WIDTH) * SEQ * WIDTH + index % WIDTH];
}
