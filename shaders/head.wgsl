// head: the classification head in one kernel: the first token of each
// sequence, a dense layer and tanh (BERT's pooler, XLM-R's classifier.dense),
// then the output projection to the labels' logits (the fused form of
// first_token, two Linears and tanh).
// Inputs:  x [BATCH * SEQ, WIDTH] f32, dense_weight [WIDTH, WIDTH] f32,
//          dense_bias [WIDTH] f32, out_weight [LABELS, WIDTH] f32,
//          out_bias [LABELS] f32
// Output:  logits [BATCH, LABELS] f32
// A workgroup a sequence: threads compute strided entries of the pooled
// vector into workgroup memory, then each logit is a tree reduction over
// WORKGROUP threads. tanh_saturating() and workgroup_reduce() come from
// fragments codegen appends.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const WIDTH: u32 = {{WIDTH}}u;
const LABELS: u32 = {{LABELS}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dense_weight: array<f32>;
@group(0) @binding(2) var<storage, read> dense_bias: array<f32>;
@group(0) @binding(3) var<storage, read> out_weight: array<f32>;
@group(0) @binding(4) var<storage, read> out_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;

var<workgroup> pooled: array<f32, WIDTH>;
var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let b = group.x;
    let first = b * SEQ * WIDTH;
    for (var o = thread; o < WIDTH; o += WORKGROUP) {
        var dot = 0.0;
        for (var k = 0u; k < WIDTH; k++) {
            dot = fma(x[first + k], dense_weight[o * WIDTH + k], dot);
        }
        pooled[o] = tanh_saturating(dot + dense_bias[o]);
    }
    workgroupBarrier();
    for (var label = 0u; label < LABELS; label++) {
        var sum = 0.0;
        for (var k = thread; k < WIDTH; k += WORKGROUP) {
            sum = fma(pooled[k], out_weight[label * WIDTH + k], sum);
        }
        let total = workgroup_reduce(thread, sum, false);
        if (thread == 0u) {
            logits[b * LABELS + label] = total + out_bias[label];
        }
    }
}
