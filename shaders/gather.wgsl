// gather: rows of a table picked by ids (embedding lookup).
// Inputs:  table0 .. table5: the table [TABLE_ROWS, WIDTH] f32 split by rows into
//          parts of ROWS_PER_PART rows (a table too big for one binding, such as
//          XLM-R's 250k x 768 words, spans several; unused parts repeat part 0);
//          ids [ROWS] u32
// Output:  out [ROWS, WIDTH] f32
// One thread an output element. An id past the table reads zeros; the runtime
// refuses such ids before it dispatches. table_value() comes from
// table_parts.wgsl, which codegen appends.
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const TABLE_ROWS: u32 = {{TABLE_ROWS}}u;
const ROWS_PER_PART: u32 = {{ROWS_PER_PART}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(6) var<storage, read> ids: array<u32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= ROWS * WIDTH) {
        return;
    }
    let id = ids[index / WIDTH];
    var value = 0.0;
    if (id < TABLE_ROWS) {
        value = table_value(id, index % WIDTH);
    }
    out[index] = value;
}
