// attention_dots: dot products of token vectors within each head,
// scores-shaped: out_ij = SCALE <a_i, b_j>, SCALE = 1 / sqrt(HEAD_DIM) with
// SCALED 1, else 1. It serves two products:
//   the scores,                   s_ij = scale <q_i, k_j>    (q, k; 1)
//   the probabilities' gradient, dp_ij = <dc_i, v_j>         (dc, v; 0)
// Each thread owns row i and 4 columns j: per quad of the head's
// dimensions, one vec4 of a_i and 4 of b feed 16 multiply-adds. Codegen
// uses it where the head width is a multiple of 4. Fixed order:
// deterministic.
// Inputs:  a, b [BATCH * SEQ, HEADS * HEAD_DIM] f32, read as vec4s
// Output:  out [BATCH, HEADS, SEQ, SEQ] f32
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const SCALED: u32 = {{SCALED}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const QUADS: u32 = HEAD_DIM / 4u;
const COLUMN_BLOCKS: u32 = (SEQ + 3u) / 4u;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Quad q of the head's slice of token t of sequence `batch`.
fn quad(batch: u32, t: u32, head: u32, q: u32) -> u32 {
    return ((batch * SEQ + t) * HEADS + head) * QUADS + q;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= BATCH * HEADS * SEQ * COLUMN_BLOCKS) {
        return;
    }
    let j = index % COLUMN_BLOCKS * 4u;
    let i = (index / COLUMN_BLOCKS) % SEQ;
    let h = (index / (COLUMN_BLOCKS * SEQ)) % HEADS;
    let n = index / (COLUMN_BLOCKS * SEQ * HEADS);
    var dots = vec4<f32>();
    for (var q = 0u; q < QUADS; q++) {
        let c = a[quad(n, i, h, q)];
        let v0 = b[quad(n, min(j, SEQ - 1u), h, q)];
        let v1 = b[quad(n, min(j + 1u, SEQ - 1u), h, q)];
        let v2 = b[quad(n, min(j + 2u, SEQ - 1u), h, q)];
        let v3 = b[quad(n, min(j + 3u, SEQ - 1u), h, q)];
        // One multiply-add a dimension, in order: the one-element
        // kernels' rounding, bit for bit.
        dots = fma(vec4(c.x), vec4<f32>(v0.x, v1.x, v2.x, v3.x), dots);
        dots = fma(vec4(c.y), vec4<f32>(v0.y, v1.y, v2.y, v3.y), dots);
        dots = fma(vec4(c.z), vec4<f32>(v0.z, v1.z, v2.z, v3.z), dots);
        dots = fma(vec4(c.w), vec4<f32>(v0.w, v1.w, v2.w, v3.w), dots);
    }
    if (SCALED == 1u) {
        dots *= inverseSqrt(f32(HEAD_DIM));
    }
    let row = ((n * HEADS + h) * SEQ + i) * SEQ;
    for (var k = 0u; k < 4u; k++) {
        if (j + k < SEQ) {
            out[row + j + k] = dots[k];
        }
    }
}
