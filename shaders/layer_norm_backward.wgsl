// layer_norm_backward: LayerNorm's gradient of x. With x^ = (x - mean) rstd
// and g = dy gamma, dx = rstd (g - mean(g) - x^ mean(g x^)).
// Inputs:  dy [ROWS, WIDTH] f32, x [ROWS, WIDTH] f32,
//          statistics [ROWS, 2] f32 (mean, 1 / std), gamma [WIDTH] f32
// Output:  dx [ROWS, WIDTH] f32
// A workgroup a row; both means by one reduction each in workgroup memory.
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> statistics: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let row = group.y * GROUPS_X + group.x;
    if (row >= ROWS) {
        return;
    }
    let base = row * WIDTH;
    let mean = statistics[2u * row];
    let rstd = statistics[2u * row + 1u];
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let g = dy[base + i] * gamma[i];
        g_sum += g;
        gx_sum += g * (x[base + i] - mean) * rstd;
    }
    let g_mean = workgroup_reduce(thread, g_sum, false) / f32(WIDTH);
    let gx_mean = workgroup_reduce(thread, gx_sum, false) / f32(WIDTH);
    for (var i = thread; i < WIDTH; i += WORKGROUP) {
        let xhat = (x[base + i] - mean) * rstd;
        dx[base + i] = rstd * (dy[base + i] * gamma[i] - g_mean - xhat * gx_mean);
    }
}
