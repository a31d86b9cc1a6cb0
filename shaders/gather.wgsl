// gather: rows of a table picked by ids (embedding lookup).
// Inputs:  table [TABLE_ROWS, WIDTH] f32, ids [ROWS] u32
// Output:  out [ROWS, WIDTH] f32
// One thread an output element. An id past the table reads zeros; the runtime
// refuses such ids before it dispatches.
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const TABLE_ROWS: u32 = {{TABLE_ROWS}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= ROWS * WIDTH) {
        return;
    }
    let row = index / WIDTH;
    let id = ids[row];
    var value = 0.0;
    if (id < TABLE_ROWS) {
        value = table[id * WIDTH + index % WIDTH];
    }
    out[index] = value;
}
