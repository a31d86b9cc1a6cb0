// mean_pool: the mean of each sequence's real token rows (mask 1).
// Inputs:  x [BATCH * SEQ, WIDTH] f32, mask [BATCH * SEQ] f32
// Output:  out [BATCH, WIDTH] f32
// One thread an output element.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const WIDTH: u32 = {{WIDTH}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * WIDTH) {
        return;
    }
    let b = index / WIDTH;
    let column = index % WIDTH;
    var sum = 0.0;
    var count = 0.0;
    for (var t = 0u; t < SEQ; t++) {
        let m = mask[b * SEQ + t];
        sum += m * x[(b * SEQ + t) * WIDTH + column];
        count += m;
    }
    out[index] = sum / max(count, 1e-9);
}
