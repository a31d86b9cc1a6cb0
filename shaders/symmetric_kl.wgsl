// symmetric_kl: how far apart the classification head's distributions for
// pairs and for their translated versions are. x holds the logits of PAIRS
// pairs, then of their translations in the same order; with p and q the
// softmax of a pair's two rows, the loss is the mean over the pairs whose
// example_mask entry (the first row's) is not 0 of
//   mask (KL(p || q) + KL(q || p)) = mask sum_k (p_k - q_k)(log p_k - log q_k);
// its gradient, for a pair,
//   d/dz_k = (mask / real) (p_k (log p_k - log q_k) + p_k - q_k - p_k KL(p || q))
// for the first row's logits z, and the same with p and q swapped. The
// modes and the entry point: pair_loss_main.wgsl.
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

// KL(p || q) + KL(q || p) of pair `pair`.
fn pair_loss(pair: u32) -> f32 {
    let d = divergences(pair, logsumexp(pair), logsumexp(PAIRS + pair));
    return d.x + d.y;
}

// d/dz_k = p_k (log p_k - log q_k) + p_k - q_k - p_k KL(p || q) for the
// first row's logits, the same with p and q swapped for the second's, each
// times `scale`.
fn write_gradient(pair: u32, scale: f32) {
    let lse_p = logsumexp(pair);
    let lse_q = logsumexp(PAIRS + pair);
    let d = divergences(pair, lse_p, lse_q);
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
