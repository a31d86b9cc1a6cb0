// cross_entropy: softmax cross-entropy of each row of logits against its
// label, averaged over the real examples (example_mask not 0), each weighted by
// its mask (1 as transformers' sequence classifiers compute it); chosen by MODE:
//   0: the loss, one thread for the whole batch (out [1]);
//   1: its gradient, mask (softmax - one-hot) / real examples, one thread a
//      row (out [BATCH, LABELS]).
// Inputs:  logits [BATCH, LABELS] f32, labels [BATCH] u32, example_mask [BATCH] f32
// Output:  out, as the mode says
const BATCH: u32 = {{BATCH}}u;
const LABELS: u32 = {{LABELS}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> example_mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// log sum exp of row `row`, shifted by its maximum.
fn log_sum_exp(row: u32) -> f32 {
    var peak = -3.4e38;
    for (var c = 0u; c < LABELS; c++) {
        peak = max(peak, logits[row * LABELS + c]);
    }
    var total = 0.0;
    for (var c = 0u; c < LABELS; c++) {
        total += exp(logits[row * LABELS + c] - peak);
    }
    return peak + log(total);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var real = 0.0;
    for (var b = 0u; b < BATCH; b++) {
        real += select(0.0, 1.0, example_mask[b] != 0.0);
    }
    real = max(real, 1.0);
    if (MODE == 0u) {
        if (gid.x != 0u) {
            return;
        }
        var loss = 0.0;
        for (var b = 0u; b < BATCH; b++) {
            let nll = log_sum_exp(b) - logits[b * LABELS + labels[b]];
            loss = fma(example_mask[b], nll, loss);
        }
        out[0] = loss / real;
        return;
    }
    let row = gid.x;
    if (row >= BATCH) {
        return;
    }
    let lse = log_sum_exp(row);
    let scale = example_mask[row] / real;
    for (var c = 0u; c < LABELS; c++) {
        let p = exp(logits[row * LABELS + c] - lse);
        out[row * LABELS + c] = scale * (p - select(0.0, 1.0, c == labels[row]));
    }
}
