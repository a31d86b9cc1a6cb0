// gather_backward: the gradient of a gather's table, the rows of dy summed
// by id. For each id the first token that picked it sums, in token order,
// the rows of every token that picked it, and writes the table's row: a
// fixed order, no atomics, deterministic. Rows no token picked are left as
// they are; codegen zeroes the output first with the fill kernel.
// Inputs:  dy [TOKENS, WIDTH] f32, ids [TOKENS] u32 (each below TABLE_ROWS,
//          checked by the runtime before the dispatch)
// Output:  out [TABLE_ROWS, WIDTH] f32
// One thread an element of dy.
const TOKENS: u32 = {{TOKENS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= TOKENS * WIDTH) {
        return;
    }
    let column = index % WIDTH;
    let t = index / WIDTH;
    let id = ids[t];
    for (var earlier = 0u; earlier < t; earlier++) {
        if (ids[earlier] == id) {
            return;
        }
    }
    var sum = 0.0;
    for (var later = t; later < TOKENS; later++) {
        if (ids[later] == id) {
            sum += dy[later * WIDTH + column];
        }
    }
    out[id * WIDTH + column] = sum;
}
