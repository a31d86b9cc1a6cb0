// attention_backward_rows: three gradients of the un-fused attention's
// products within each head, token-shaped, chosen by MODE:
//   0: the queries', dq_i = scale sum_j ds_ij k_j    (scores = ds, tokens = key)
//   1: the keys',    dk_j = scale sum_i ds_ij q_i    (scores = ds, tokens = query)
//   3: the values',  dv_j = sum_i p_ij dc_i          (scores = probs, tokens = dc)
// with scale = 1 / sqrt(HEAD_DIM). Each thread owns 4 rows (tokens) x 4 of
// the head's dimensions: per step of the sum, 4 scores and one vec4 of the
// tokens feed 16 multiply-adds (attention_backward.wgsl, one element a
// thread, takes a head width that is no multiple of 4). Sums run over the
// other tokens in order: deterministic.
// Inputs:  scores [BATCH, HEADS, SEQ, SEQ] f32;
//          tokens [BATCH * SEQ, HEADS * HEAD_DIM] f32, read as vec4s
// Output:  out [BATCH * SEQ, HEADS * HEAD_DIM] f32, written as vec4s
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const QUADS: u32 = HEAD_DIM / 4u;
const ROW_BLOCKS: u32 = (SEQ + 3u) / 4u;

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

// Element (batch, head, i, j) of a scores-shaped value.
fn score(batch: u32, head: u32, i: u32, j: u32) -> u32 {
    return ((batch * HEADS + head) * SEQ + i) * SEQ + j;
}

// Quad q of the head's slice of token t of sequence `batch`.
fn quad(batch: u32, t: u32, head: u32, q: u32) -> u32 {
    return ((batch * SEQ + t) * HEADS + head) * QUADS + q;
}

// The score that weights token `other` in row t's sum.
fn weight_of(n: u32, h: u32, t: u32, other: u32) -> f32 {
    let row = min(t, SEQ - 1u);
    if (MODE == 0u) {
        return scores[score(n, h, row, other)];
    }
    return scores[score(n, h, other, row)];
}

fn store(n: u32, t: u32, h: u32, q: u32, v: vec4<f32>) {
    if (t >= SEQ) {
        return;
    }
    if (MODE == 3u) {
        out[quad(n, t, h, q)] = v;
    } else {
        out[quad(n, t, h, q)] = v * inverseSqrt(f32(HEAD_DIM));
    }
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * HEADS * ROW_BLOCKS * QUADS) {
        return;
    }
    let q = index % QUADS;
    let t = (index / QUADS) % ROW_BLOCKS * 4u;
    let h = (index / (QUADS * ROW_BLOCKS)) % HEADS;
    let n = index / (QUADS * ROW_BLOCKS * HEADS);
    var s0 = vec4<f32>();
    var s1 = vec4<f32>();
    var s2 = vec4<f32>();
    var s3 = vec4<f32>();
    for (var other = 0u; other < SEQ; other++) {
        let v = tokens[quad(n, other, h, q)];
        s0 = fma(vec4(weight_of(n, h, t, other)), v, s0);
        s1 = fma(vec4(weight_of(n, h, t + 1u, other)), v, s1);
        s2 = fma(vec4(weight_of(n, h, t + 2u, other)), v, s2);
        s3 = fma(vec4(weight_of(n, h, t + 3u, other)), v, s3);
    }
    store(n, t, h, q, s0);
    store(n, t + 1u, h, q, s1);
    store(n, t + 2u, h, q, s2);
    store(n, t + 3u, h, q, s3);
}
