// attention: scaled dot-product attention of one head in one kernel: scores,
// padding mask, softmax and the weighted sum of values (the fused form of
// attention_scores, masked_softmax and attention_context).
// Inputs:  query, key, value [BATCH * SEQ, STRIDE] f32, each head's slice of
//          a row from column Q_OFFSET, K_OFFSET or V_OFFSET: three buffers
//          with STRIDE = HEADS * HEAD_DIM and offsets 0, or one buffer bound
//          three times holding Q, K and V side by side (the fused
//          projection's output: STRIDE = 3 HEADS HEAD_DIM);
//          mask [BATCH * SEQ] f32 (1 real token, 0 padding)
// Output:  context [BATCH * SEQ, HEADS * HEAD_DIM] f32
// A workgroup a query row (b, h, i): the row's SEQ scores live in workgroup
// memory; max and sum are tree reductions over WORKGROUP threads.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const WIDTH: u32 = HEADS * HEAD_DIM;
const STRIDE: u32 = {{STRIDE}}u;
const Q_OFFSET: u32 = {{Q_OFFSET}}u;
const K_OFFSET: u32 = {{K_OFFSET}}u;
const V_OFFSET: u32 = {{V_OFFSET}}u;

@group(0) @binding(0) var<storage, read> query: array<f32>;
@group(0) @binding(1) var<storage, read> key: array<f32>;
@group(0) @binding(2) var<storage, read> value: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> context: array<f32>;

var<workgroup> row_scores: array<f32, SEQ>;
var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let row = group.y * GROUPS_X + group.x;
    if (row >= BATCH * HEADS * SEQ) {
        return;
    }
    let i = row % SEQ;
    let h = (row / SEQ) % HEADS;
    let b = row / (SEQ * HEADS);
    let q = (b * SEQ + i) * STRIDE + Q_OFFSET + h * HEAD_DIM;
    let scale = inverseSqrt(f32(HEAD_DIM));
    var local_max = -3.4e38;
    for (var j = thread; j < SEQ; j += WORKGROUP) {
        var score = -3.4e38;
        if (mask[b * SEQ + j] > 0.0) {
            let k = (b * SEQ + j) * STRIDE + K_OFFSET + h * HEAD_DIM;
            var dot = 0.0;
            for (var d = 0u; d < HEAD_DIM; d++) {
                dot = fma(query[q + d], key[k + d], dot);
            }
            score = dot * scale;
            local_max = max(local_max, score);
        }
        row_scores[j] = score;
    }
    let peak = workgroup_reduce(thread, local_max, true);
    var local_sum = 0.0;
    for (var j = thread; j < SEQ; j += WORKGROUP) {
        var e = 0.0;
        if (mask[b * SEQ + j] > 0.0) {
            e = exp(row_scores[j] - peak);
        }
        row_scores[j] = e;
        local_sum += e;
    }
    let total = workgroup_reduce(thread, local_sum, false);
    for (var d = thread; d < HEAD_DIM; d += WORKGROUP) {
        var sum = 0.0;
        for (var j = 0u; j < SEQ; j++) {
            sum = fma(row_scores[j], value[(b * SEQ + j) * STRIDE + V_OFFSET + h * HEAD_DIM + d], sum);
        }
        context[(b * SEQ + i) * WIDTH + h * HEAD_DIM + d] = sum / total;
    }
}
