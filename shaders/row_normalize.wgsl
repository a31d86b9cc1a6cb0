// row_normalize: each row rescaled as a whole, chosen by MODE:
//   0: softmax;  1: divided by its L2 norm (at least 1e-12).
// Inputs:  x [ROWS, WIDTH] f32
// Output:  out [ROWS, WIDTH] f32
// One thread a row (rows are few: one a sequence).
const ROWS: u32 = {{ROWS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (row >= ROWS) {
        return;
    }
    let base = row * WIDTH;
    if (MODE == 0u) {
        var peak = -3.4e38;
        for (var i = 0u; i < WIDTH; i++) {
            peak = max(peak, x[base + i]);
        }
        var total = 0.0;
        for (var i = 0u; i < WIDTH; i++) {
            total += exp(x[base + i] - peak);
        }
        for (var i = 0u; i < WIDTH; i++) {
            out[base + i] = exp(x[base + i] - peak) / total;
        }
    } else {
        var squares = 0.0;
        for (var i = 0u; i < WIDTH; i++) {
            squares += x[base + i] * x[base + i];
        }
        let scale = 1.0 / max(sqrt(squares), 1e-12);
        for (var i = 0u; i < WIDTH; i++) {
            out[base + i] = x[base + i] * scale;
        }
    }
}
