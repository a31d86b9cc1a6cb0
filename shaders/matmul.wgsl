// matmul: out = x times w transposed, tiled and register-blocked; with
// HAS_BIAS, plus bias on every row; with ACTIVATION 1, then GELU (the fused
// Linear of GEMM + bias + GELU).
// Inputs:  x [M, K] f32, w [N, K] f32 (PyTorch Linear layout: out, in),
//          bias [N] f32 (when HAS_BIAS is 0 any buffer is bound, never read)
// Output:  out [M, N] f32
// A workgroup of 16 x 16 threads computes a TILE_M x TILE_N block of out;
// each thread THREAD_M rows of THREAD_N = 4 adjacent columns, held in vec4
// registers. Tiles of x and w
// TILE_K wide pass through workgroup memory. Any M, N, K: loads past the edge
// read zeros and stores past it are skipped.
const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;
const TILE_K: u32 = {{TILE_K}}u;
const THREAD_M: u32 = {{THREAD_M}}u;
const THREAD_N: u32 = {{THREAD_N}}u;
const HAS_BIAS: u32 = {{HAS_BIAS}}u;
const ACTIVATION: u32 = {{ACTIVATION}}u;
const THREADS_SIDE: u32 = 16u;
const TILE_M: u32 = THREADS_SIDE * THREAD_M;
const TILE_N: u32 = THREADS_SIDE * THREAD_N;
const THREADS: u32 = THREADS_SIDE * THREADS_SIDE;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> x_tile: array<f32, TILE_M * TILE_K>;
var<workgroup> w_tile: array<f32, TILE_N * TILE_K>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N;
    // Thread (x, y) owns rows y + 16 i and the THREAD_N = 4 adjacent columns
    // from 4 x, accumulated as one vec4 a row.
    var acc: array<vec4<f32>, THREAD_M>;
    for (var k0 = 0u; k0 < K; k0 += TILE_K) {
        for (var i = thread; i < TILE_M * TILE_K; i += THREADS) {
            let r = row0 + i / TILE_K;
            let k = k0 + i % TILE_K;
            var v = 0.0;
            if (r < M && k < K) {
                v = x[r * K + k];
            }
            x_tile[i] = v;
        }
        for (var i = thread; i < TILE_N * TILE_K; i += THREADS) {
            let c = col0 + i / TILE_K;
            let k = k0 + i % TILE_K;
            var v = 0.0;
            if (c < N && k < K) {
                v = w[c * K + k];
            }
            w_tile[i] = v;
        }
        workgroupBarrier();
        let c = local.x * THREAD_N;
        for (var k = 0u; k < TILE_K; k++) {
            let b = vec4<f32>(
                w_tile[c * TILE_K + k],
                w_tile[(c + 1u) * TILE_K + k],
                w_tile[(c + 2u) * TILE_K + k],
                w_tile[(c + 3u) * TILE_K + k],
            );
            for (var i = 0u; i < THREAD_M; i++) {
                acc[i] = fma(vec4<f32>(x_tile[(local.y + i * THREADS_SIDE) * TILE_K + k]), b, acc[i]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < THREAD_M; i++) {
        let r = row0 + local.y + i * THREADS_SIDE;
        for (var j = 0u; j < THREAD_N; j++) {
            let c = col0 + local.x * THREAD_N + j;
            if (r < M && c < N) {
                var v = acc[i][j];
                if (HAS_BIAS == 1u) {
                    v += bias[c];
                }
                if (ACTIVATION == 1u) {
                    v = gelu(v);
                }
                out[r * N + c] = v;
            }
        }
    }
}
