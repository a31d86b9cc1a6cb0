// attention_context: the probability-weighted sum of values within each head.
// Inputs:  probs [BATCH, HEADS, SEQ, SEQ] f32, value [BATCH * SEQ, HEADS * HEAD_DIM] f32
// Output:  context [BATCH * SEQ, HEADS * HEAD_DIM] f32
// One thread an output element.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const WIDTH: u32 = HEADS * HEAD_DIM;

@group(0) @binding(0) var<storage, read> probs: array<f32>;
@group(0) @binding(1) var<storage, read> value: array<f32>;
@group(0) @binding(2) var<storage, read_write> context: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * SEQ * WIDTH) {
        return;
    }
    let column = index % WIDTH;
    let h = column / HEAD_DIM;
    let token = index / WIDTH;
    let b = token / SEQ;
    let i = token % SEQ;
    let p = ((b * HEADS + h) * SEQ + i) * SEQ;
    var sum = 0.0;
    for (var j = 0u; j < SEQ; j++) {
        sum = fma(probs[p + j], value[(b * SEQ + j) * WIDTH + column], sum);
    }
    context[index] = sum;
}
