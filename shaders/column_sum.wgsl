// column_sum: the sum of each column of a matrix (a bias's gradient), one
// thread a column adding the rows in order: deterministic, no atomics.
// Inputs:  dy [ROWS, COLS] f32
// Output:  out [COLS] f32
const ROWS: u32 = {{ROWS}}u;
const COLS: u32 = {{COLS}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let column = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (column >= COLS) {
        return;
    }
    var sum = 0.0;
    for (var row = 0u; row < ROWS; row++) {
        sum += dy[row * COLS + column];
    }
    out[column] = sum;
}
