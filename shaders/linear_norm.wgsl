// linear_norm: a sublayer's output in one kernel: LayerNorm of (x times w
// transposed, plus bias, plus the residual), biased variance, EPS inside the
// root (the fused form of the Linear, the residual add and layer_norm).
// Inputs:  x [M, K] f32, w [N, K] f32 (PyTorch Linear layout: out, in),
//          bias [N] f32, residual [M, N] f32, gamma [N] f32, beta [N] f32
// Output:  out [M, N] f32
// LayerNorm needs whole rows, so a workgroup owns ROWS whole rows of out:
// thread t accumulates columns t, t + WORKGROUP, ... (COLS of them) of every
// one of its rows in registers. Each column of w is read by one thread only,
// straight from memory along k; tiles of x (ROWS x TILE_K), which every thread
// reads, pass through workgroup memory, and each k step loads the ROWS values
// of x once for all COLS columns. Then, a row at a time, bias and residual are
// added and mean and variance reduced over the workgroup.
// Any M, N, K: loads past the edge read zeros, stores past it are skipped.
// workgroup_reduce() comes from the fragment codegen appends.
const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;
const ROWS: u32 = {{ROWS}}u;
const TILE_K: u32 = {{TILE_K}}u;
const COLS: u32 = {{COLS}}u;
const EPS: f32 = {{EPS}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> x_tile: array<f32, ROWS * TILE_K>;
var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
    let row0 = (group.y * GROUPS_X + group.x) * ROWS;
    var acc: array<array<f32, COLS>, ROWS>;
    for (var k0 = 0u; k0 < K; k0 += TILE_K) {
        for (var i = thread; i < ROWS * TILE_K; i += WORKGROUP) {
            let r = row0 + i / TILE_K;
            let k = k0 + i % TILE_K;
            var v = 0.0;
            if (r < M && k < K) {
                v = x[r * K + k];
            }
            x_tile[i] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < min(TILE_K, K - k0); kk++) {
            var a: array<f32, ROWS>;
            for (var r = 0u; r < ROWS; r++) {
                a[r] = x_tile[r * TILE_K + kk];
            }
            for (var j = 0u; j < COLS; j++) {
                let c = thread + j * WORKGROUP;
                var b = 0.0;
                if (c < N) {
                    b = w[c * K + k0 + kk];
                }
                for (var r = 0u; r < ROWS; r++) {
                    acc[r][j] = fma(a[r], b, acc[r][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < ROWS; r++) {
        let row = row0 + r;
        if (row >= M) {
            break;
        }
        var sum = 0.0;
        for (var j = 0u; j < COLS; j++) {
            let c = thread + j * WORKGROUP;
            if (c < N) {
                let v = acc[r][j] + bias[c] + residual[row * N + c];
                acc[r][j] = v;
                sum += v;
            }
        }
        let mean = workgroup_reduce(thread, sum, false) / f32(N);
        var squares = 0.0;
        for (var j = 0u; j < COLS; j++) {
            let c = thread + j * WORKGROUP;
            if (c < N) {
                let d = acc[r][j] - mean;
                squares += d * d;
            }
        }
        let inv_std = inverseSqrt(workgroup_reduce(thread, squares, false) / f32(N) + EPS);
        for (var j = 0u; j < COLS; j++) {
            let c = thread + j * WORKGROUP;
            if (c < N) {
                out[row * N + c] = (acc[r][j] - mean) * inv_std * gamma[c] + beta[c];
            }
        }
    }
}
