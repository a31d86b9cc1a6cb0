// symmetric_kl: how far apart the classification head's distributions for
// pairs and for their translated versions are. x holds the logits of PAIRS
// pairs, then of their translations in the same order; with p and q the
// softmax of a pair's two rows, the loss is the mean over the pairs whose
// example_mask entry (the first row's) is not 0 of
//   mask (KL(p || q) + KL(q || p)) = mask sum_k (p_k - q_k)(log p_k - log q_k).
// Chosen by MODE:
//   0: the loss, one thread for the whole batch (out [1]);
//   1: its gradient, one thread a pair writing both rows (out [2 PAIRS, WIDTH]):
//      d/dz_k = (mask / real) (p_k (log p_k - log q_k) + p_k - q_k - p_k KL(p || q))
//      for the first row's logits z, and the same with p and q swapped.
// Inputs:  x [2 PAIRS, WIDTH] f32, example_mask [2 PAIRS] f32
// Output:  out, as the mode says
const PAIRS: u32 = {{PAIRS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> example_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// The log-sum-exp of row `row` of x.
fn logsumexp(row: u32) -> f32 {
    var top = -3.0e38;
    for (var k = 0u; k < WIDTH; k++) {
        top = max(top, x[row * WIDTH + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        sum += exp(x[row * WIDTH + k] - top);
    }
    return top + log(sum);
}

// (KL(p || q), KL(q || p)) of pair `pair`, given its rows' log-sum-exps.
fn divergences(pair: u32, lse_p: f32, lse_q: f32) -> vec2<f32> {
    let a = pair * WIDTH;
    let b = (PAIRS + pair) * WIDTH;
    var pq = 0.0;
    var qp = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        let lp = x[a + k] - lse_p;
        let lq = x[b + k] - lse_q;
        pq = fma(exp(lp), lp - lq, pq);
        qp = fma(exp(lq), lq - lp, qp);
    }
    return vec2<f32>(pq, qp);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var real = 0.0;
    for (var i = 0u; i < PAIRS; i++) {
        real += select(0.0, 1.0, example_mask[i] != 0.0);
    }
    real = max(real, 1.0);
    if (MODE == 0u) {
        if (gid.x != 0u) {
            return;
        }
        var loss = 0.0;
        for (var i = 0u; i < PAIRS; i++) {
            let d = divergences(i, logsumexp(i), logsumexp(PAIRS + i));
            loss = fma(example_mask[i], d.x + d.y, loss);
        }
        out[0] = loss / real;
        return;
    }
    let pair = gid.x;
    if (pair >= PAIRS) {
        return;
    }
    let lse_p = logsumexp(pair);
    let lse_q = logsumexp(PAIRS + pair);
    let d = divergences(pair, lse_p, lse_q);
    let scale = example_mask[pair] / real;
    let a = pair * WIDTH;
    let b = (PAIRS + pair) * WIDTH;
    for (var k = 0u; k < WIDTH; k++) {
        let lp = x[a + k] - lse_p;
        let lq = x[b + k] - lse_q;
        let p = exp(lp);
        let q = exp(lq);
        out[a + k] = scale * (p * (lp - lq) + p - q - p * d.x);
        out[b + k] = scale * (q * (lq - lp) + q - p - q * d.y);
    }
}
