// gather_backward: the gradient of a gather's table, the rows of dy summed
// by id. `order` (computed by the runtime from the ids) lists the tokens
// sorted by id, each id's tokens in token order; the thread of each run's
// first entry sums the run's rows of dy in that order: a fixed order, no
// atomics, deterministic, each row of dy read once. This dispatch covers
// table rows FIRST_ROW..FIRST_ROW+ROWS (a table split over bindings takes
// one dispatch a part); its output holds those rows. ACCUMULATE 0 writes
// each touched row (rows no token picked are left as they are: codegen
// zeroes the output first with the fill kernel); ACCUMULATE 1 adds into
// them (a parameter's gradient buffer, summed over micro-batches:
// untouched rows get nothing added, so nothing is zeroed).
// Inputs:  dy [TOKENS, WIDTH] f32, ids [TOKENS] u32 (each below the table's
//          rows, checked by the runtime before the dispatch), order
//          [TOKENS] u32 (a permutation of the tokens, stable by id)
// Output:  out [ROWS, WIDTH] f32
// One thread an element of dy, in sorted order.
const TOKENS: u32 = {{TOKENS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const FIRST_ROW: u32 = {{FIRST_ROW}}u;
const ROWS: u32 = {{ROWS}}u;
const ACCUMULATE: u32 = {{ACCUMULATE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= TOKENS * WIDTH) {
        return;
    }
    let column = index % WIDTH;
    let first = index / WIDTH;
    let id = ids[order[first]];
    if (id < FIRST_ROW || id - FIRST_ROW >= ROWS) {
        return;
    }
    if (first > 0u && ids[order[first - 1u]] == id) {
        return;
    }
    var sum = 0.0;
    for (var i = first; i < TOKENS; i++) {
        let t = order[i];
        if (ids[t] != id) {
            break;
        }
        sum += dy[t * WIDTH + column];
    }
    let at = (id - FIRST_ROW) * WIDTH + column;
    if (ACCUMULATE == 1u) {
        out[at] += sum;
    } else {
        out[at] = sum;
    }
}
