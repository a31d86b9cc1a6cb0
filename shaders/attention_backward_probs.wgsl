// attention_backward_probs: the gradient of the attention probabilities
// within each head, dp_ij = <dc_i, v_j> (dc the gradient of the context, v
// the values). Each thread owns row i and 4 columns j: per quad of the
// head's dimensions, one vec4 of dc_i and 4 of the values feed 16
// multiply-adds (attention_backward.wgsl's mode 2, one element a thread,
// takes a head width that is no multiple of 4). Fixed order: deterministic.
// Inputs:  context_gradient, value [BATCH * SEQ, HEADS * HEAD_DIM] f32, read as vec4s
// Output:  out [BATCH, HEADS, SEQ, SEQ] f32
const BATCH: u32 = {{BATCH}}u;
const SEQ: u32 = {{SEQ}}u;
const HEADS: u32 = {{HEADS}}u;
const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const QUADS: u32 = HEAD_DIM / 4u;
const COLUMN_BLOCKS: u32 = (SEQ + 3u) / 4u;

@group(0) @binding(0) var<storage, read> context_gradient: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> value: array<vec4<f32>>;
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
        let c = context_gradient[quad(n, i, h, q)];
        let v0 = value[quad(n, min(j, SEQ - 1u), h, q)];
        let v1 = value[quad(n, min(j + 1u, SEQ - 1u), h, q)];
        let v2 = value[quad(n, min(j + 2u, SEQ - 1u), h, q)];
        let v3 = value[quad(n, min(j + 3u, SEQ - 1u), h, q)];
        dots = dots + vec4<f32>(dot(c, v0), dot(c, v1), dot(c, v2), dot(c, v3));
    }
    let row = ((n * HEADS + h) * SEQ + i) * SEQ;
    for (var k = 0u; k < 4u; k++) {
        if (j + k < SEQ) {
            out[row + j + k] = dots[k];
        }
    }
}
