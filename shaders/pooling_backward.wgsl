// pooling_backward: the gradient of a pooling of each sequence, chosen by MODE:
//   0: the first token's: dy goes to token 0 of its sequence, other tokens get 0
//      (mask is bound but never read);
//   1: the mean over real tokens': dy / count to each real token, 0 to padding.
// Inputs:  dy [BATCH, WIDTH] f32, mask [BATCH * SEQ] f32 (1 real, 0 padding)
// Output:  dx [BATCH * SEQ, WIDTH] f32
// One thread an element of dx.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const WIDTH: u32 = {{WIDTH}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * SEQ * WIDTH) {
        return;
    }
    let column = index % WIDTH;
    let t = index / WIDTH;
    let b = t / SEQ;
    let g = dy[b * WIDTH + column];
    if (MODE == 0u) {
        dx[index] = select(0.0, g, t % SEQ == 0u);
        return;
    }
    var count = 0.0;
    for (var s = 0u; s < SEQ; s++) {
        count += mask[b * SEQ + s];
    }
    dx[index] = g * (mask[t] / max(count, 1e-9));
}
