// layer_norm_statistics: what LayerNorm's backward reads, each row's mean
// and 1 / sqrt(biased variance + EPS), computed as layer_norm computes them.
// Inputs:  x [ROWS, WIDTH] f32
// Output:  out [ROWS, 2] f32: mean, then 1 / std
// A workgroup a row, reduced in workgroup memory.
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const EPS: f32 = {{EPS}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let row = group.y * GROUPS_X + group.x;
    if (row >= ROWS) {
        return;
    }
    let base = row * WIDTH;
    var sum = 0.0;
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        sum += x[base + i];
    }
    let mean = workgroup_reduce(thread, sum, false) / f32(WIDTH);
    var squares = 0.0;
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let d = x[base + i] - mean;
        squares += d * d;
    }
    let inv_std = inverseSqrt(workgroup_reduce(thread, squares, false) / f32(WIDTH) + EPS);
    if (thread == 0u) {
        out[2u * row] = mean;
        out[2u * row + 1u] = inv_std;
    }
}
