// layer_norm: LayerNorm over rows, biased variance, EPS inside the root.
// Inputs:  x [ROWS, WIDTH] f32, gamma [WIDTH] f32, beta [WIDTH] f32
// Output:  out [ROWS, WIDTH] f32; in a training step also each row's mean
//          and 1 / std, what the backward reads (save_statistics, from
//          layer_norm_save.wgsl: statistics [ROWS, 2] at binding 4;
//          layer_norm_discard.wgsl keeps nothing)
// A workgroup a row: WORKGROUP threads sum strided slices, then a tree
// reduction in workgroup memory, once for the mean and once for the variance,
// as layer_norm_statistics computes them (the same sums in the same order).
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const EPS: f32 = {{EPS}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
    save_statistics(row, thread, mean, inv_std);
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        out[base + i] = (x[base + i] - mean) * inv_std * gamma[i] + beta[i];
    }
}
