// layer_norm_gamma_backward: LayerNorm's gradient of gamma, the column sums
// of dy x^ with x^ = (x - mean) rstd; one thread a column adding the rows in
// order: deterministic, no atomics.
// Inputs:  dy [ROWS, WIDTH] f32, x [ROWS, WIDTH] f32,
//          statistics [ROWS, 2] f32 (mean, 1 / std)
// Output:  dgamma [WIDTH] f32
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> statistics: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let column = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (column >= WIDTH) {
        return;
    }
    var sum = 0.0;
    for (var row = 0u; row < ROWS; row++) {
        let xhat = (x[row * WIDTH + column] - statistics[2u * row]) * statistics[2u * row + 1u];
        sum = fma(dy[row * WIDTH + column], xhat, sum);
    }
    dgamma[column] = sum;
}
