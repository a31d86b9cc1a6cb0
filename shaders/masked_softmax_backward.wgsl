// masked_softmax_backward: the softmax's gradient of its scores from its
// output p, in each row ds = p (dp - <p, dp>); padding keys (p = 0) get 0.
// Inputs:  probs [ROWS, SEQ] f32, dy [ROWS, SEQ] f32 (the gradient of probs)
// Output:  ds [ROWS, SEQ] f32
// One thread a row.
const ROWS: u32 = {{ROWS}}u;
const SEQ: u32 = {{SEQ}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ds: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (row >= ROWS) {
        return;
    }
    let base = row * SEQ;
    var dot = 0.0;
    for (var j = 0u; j < SEQ; j++) {
        dot = fma(probs[base + j], dy[base + j], dot);
    }
    for (var j = 0u; j < SEQ; j++) {
        ds[base + j] = probs[base + j] * (dy[base + j] - dot);
    }
}
