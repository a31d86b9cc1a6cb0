// embeddings: the embedding layer in one kernel: the word, token type and
// position rows of each token, summed as (word + type) + position, then
// LayerNorm (the fused form of three gathers, two adds and layer_norm).
// Inputs:  table0 .. table5: one table [TABLE_ROWS, WIDTH] f32 split by rows
//          into parts of ROWS_PER_PART rows (unused parts repeat part 0),
//          holding WORDS word rows, TYPES token type rows, the position rows,
//          then gamma and beta as one row each;
//          ids [3 * TOKENS] u32: the input ids, then the token type ids, then
//          the position ids
// Output:  out [TOKENS, WIDTH] f32
// A workgroup a token. Each thread writes the sums of its strided columns to
// out and reads back only those, so no barrier is needed between the passes;
// mean and variance are tree reductions over WORKGROUP threads. Ids past their
// rows read zeros; the runtime refuses such ids before it dispatches.
// table_value() and workgroup_reduce() come from fragments codegen appends.
const TOKENS: u32 = {{TOKENS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const TABLE_ROWS: u32 = {{TABLE_ROWS}}u;
const ROWS_PER_PART: u32 = {{ROWS_PER_PART}}u;
const WORDS: u32 = {{WORDS}}u;
const TYPES: u32 = {{TYPES}}u;
const POSITIONS: u32 = TABLE_ROWS - WORDS - TYPES - 2u;
const EPS: f32 = {{EPS}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(6) var<storage, read> ids: array<u32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP>;

// Column `column` of row `id` of the block of `rows` rows from `first`.
fn block_value(first: u32, rows: u32, id: u32, column: u32) -> f32 {
    if (id >= rows) {
        return 0.0;
    }
    return table_value(first + id, column);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let token = group.y * GROUPS_X + group.x;
    if (token >= TOKENS) {
        return;
    }
    let word = ids[token];
    let kind = ids[TOKENS + token];
    let position = ids[2u * TOKENS + token];
    let base = token * WIDTH;
    var sum = 0.0;
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let words_types = block_value(0u, WORDS, word, i) + block_value(WORDS, TYPES, kind, i);
        let v = words_types + block_value(WORDS + TYPES, POSITIONS, position, i);
        out[base + i] = v;
        sum += v;
    }
    let mean = workgroup_reduce(thread, sum, false) / f32(WIDTH);
    var squares = 0.0;
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let d = out[base + i] - mean;
        squares += d * d;
    }
    let inv_std = inverseSqrt(workgroup_reduce(thread, squares, false) / f32(WIDTH) + EPS);
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let gamma = table_value(TABLE_ROWS - 2u, i);
        let beta = table_value(TABLE_ROWS - 1u, i);
        out[base + i] = (out[base + i] - mean) * inv_std * gamma + beta;
    }
}
