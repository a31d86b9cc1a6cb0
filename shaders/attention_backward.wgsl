// attention_backward: the gradients of the un-fused attention's two products
// within each head, one output element a thread, chosen by MODE:
//   0: the queries', dq_i = scale sum_j ds_ij k_j    (a = ds, b = key)
//   1: the keys',    dk_j = scale sum_i ds_ij q_i    (a = ds, b = query)
//   2: the probabilities', dp_ij = <dc_i, v_j>      (a = dc, b = value)
//   3: the values',  dv_j = sum_i p_ij dc_i          (a = dc, b = probs)
// with scale = 1 / sqrt(HEAD_DIM), ds the gradient of the scaled scores and
// dc that of the context. Sums run in a fixed order: deterministic.
// Inputs:  a, b: scores-shaped [BATCH, HEADS, SEQ, SEQ] or token-shaped
//          [BATCH * SEQ, HEADS * HEAD_DIM] f32, as the mode reads them
// Output:  out: token-shaped (modes 0, 1, 3) or scores-shaped (mode 2)
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const WIDTH: u32 = HEADS * HEAD_DIM;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Element (batch, head, i, j) of a scores-shaped value.
fn score(batch: u32, head: u32, i: u32, j: u32) -> u32 {
    return ((batch * HEADS + head) * SEQ + i) * SEQ + j;
}

// Element d of the head's slice of token t of sequence `batch`.
fn token(batch: u32, t: u32, head: u32, d: u32) -> u32 {
    return (batch * SEQ + t) * WIDTH + head * HEAD_DIM + d;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (MODE == 2u) {
        if (index >= BATCH * HEADS * SEQ * SEQ) {
            return;
        }
        let j = index % SEQ;
        let i = (index / SEQ) % SEQ;
        let h = (index / (SEQ * SEQ)) % HEADS;
        let n = index / (SEQ * SEQ * HEADS);
        var dot = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) {
            dot = fma(a[token(n, i, h, d)], b[token(n, j, h, d)], dot);
        }
        out[index] = dot;
        return;
    }
    if (index >= BATCH * SEQ * WIDTH) {
        return;
    }
    let d = index % HEAD_DIM;
    let h = (index / HEAD_DIM) % HEADS;
    let t = (index / WIDTH) % SEQ;
    let n = index / (WIDTH * SEQ);
    var sum = 0.0;
    for (var other = 0u; other < SEQ; other++) {
        if (MODE == 0u) {
            sum = fma(a[score(n, h, t, other)], b[token(n, other, h, d)], sum);
        } else if (MODE == 1u) {
            sum = fma(a[score(n, h, other, t)], b[token(n, other, h, d)], sum);
        } else {
            sum = fma(b[score(n, h, other, t)], a[token(n, other, h, d)], sum);
        }
    }
    if (MODE == 3u) {
        out[index] = sum;
    } else {
        out[index] = sum * inverseSqrt(f32(HEAD_DIM));
    }
}
