// attention_sums: score-weighted sums of token vectors within each head,
// token-shaped: out_t = SCALE sum_o w(t, o) tokens_o, the weight w(t, o)
// = scores[t][o], or scores[o][t] with TRANSPOSED 1, and SCALE = 1 /
// sqrt(HEAD_DIM) with SCALED 1, else 1. It serves four products:
//   the context,                 c_i = sum_j p_ij v_j          (p, v; 0, 0)
//   the queries' gradient,      dq_i = scale sum_j ds_ij k_j   (ds, k; 0, 1)
//   the keys' gradient,         dk_j = scale sum_i ds_ij q_i   (ds, q; 1, 1)
//   the values' gradient,       dv_j = sum_i p_ij dc_i         (p, dc; 1, 0)
// Each thread owns 4 rows (tokens) x 4 of the head's dimensions: per step
// of the sum, 4 scores and one vec4 of the tokens feed 16 multiply-adds.
// Codegen uses it where the head width is a multiple of 4. Sums run over
// the other tokens in order: deterministic.
// Inputs:  scores [BATCH, HEADS, SEQ, SEQ] f32;
//          tokens [BATCH * SEQ, HEADS * HEAD_DIM] f32, read as vec4s
// Output:  out [BATCH * SEQ, HEADS * HEAD_DIM] f32, written as vec4s
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const TRANSPOSED: u32 = {{TRANSPOSED}}u;
const SCALED: u32 = {{SCALED}}u;
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
    if (TRANSPOSED == 1u) {
        return scores[score(n, h, other, row)];
    }
    return scores[score(n, h, row, other)];
}

fn store(n: u32, t: u32, h: u32, q: u32, v: vec4<f32>) {
    if (t >= SEQ) {
        return;
    }
    if (SCALED == 1u) {
        out[quad(n, t, h, q)] = v * inverseSqrt(f32(HEAD_DIM));
    } else {
        out[quad(n, t, h, q)] = v;
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
