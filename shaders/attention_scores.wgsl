// attention_scores: scaled dot products of queries and keys within each head.
// Inputs:  query [BATCH * SEQ, HEADS * HEAD_DIM] f32, key [same] f32
// Output:  scores [BATCH, HEADS, SEQ, SEQ] f32, scaled by 1 / sqrt(HEAD_DIM)
// One thread a score.
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const WIDTH: u32 = HEADS * HEAD_DIM;

@group(0) @binding(0) var<storage, read> query: array<f32>;
@group(0) @binding(1) var<storage, read> key: array<f32>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * HEADS * SEQ * SEQ) {
        return;
    }
    let j = index % SEQ;
    let i = (index / SEQ) % SEQ;
    let h = (index / (SEQ * SEQ)) % HEADS;
    let b = index / (SEQ * SEQ * HEADS);
    let q = (b * SEQ + i) * WIDTH + h * HEAD_DIM;
    let k = (b * SEQ + j) * WIDTH + h * HEAD_DIM;
    var dot = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) {
        dot = fma(query[q + d], key[k + d], dot);
    }
    scores[index] = dot * inverseSqrt(f32(HEAD_DIM));
}
