// masked_softmax: softmax over each row of SEQ scores; keys whose mask is 0
// (padding) get probability 0.
// Inputs:  scores [BATCH, HEADS, SEQ, SEQ] f32, mask [BATCH * SEQ] f32 (1 real, 0 padding)
// Output:  probs [BATCH, HEADS, SEQ, SEQ] f32
// One thread a row.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (row >= BATCH * HEADS * SEQ) {
        return;
    }
    let b = row / (HEADS * SEQ);
    let base = row * SEQ;
    var peak = -3.4e38;
    for (var j = 0u; j < SEQ; j++) {
        if (mask[b * SEQ + j] > 0.0) {
            peak = max(peak, scores[base + j]);
        }
    }
    var total = 0.0;
    for (var j = 0u; j < SEQ; j++) {
        if (mask[b * SEQ + j] > 0.0) {
            total += exp(scores[base + j] - peak);
        }
    }
    for (var j = 0u; j < SEQ; j++) {
        var p = 0.0;
        if (mask[b * SEQ + j] > 0.0) {
            p = exp(scores[base + j] - peak) / total;
        }
        probs[base + j] = p;
    }
}
