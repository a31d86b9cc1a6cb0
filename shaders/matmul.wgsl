// matmul: out = x times w transposed, tiled and register-blocked; with
// HAS_BIAS, plus bias on every row; with ACTIVATION 1, then GELU (the fused
// Linear of GEMM + bias + GELU).
// Inputs:  x [M, K] f32, or with X_TRANSPOSED 1 stored as [K, M];
//          w [N, K] f32 (PyTorch Linear layout: out, in), or with
//          W_TRANSPOSED 1 stored as [K, N];
//          bias [N] f32 (when HAS_BIAS is 0 any buffer is bound, never read)
// Output:  out [M, N] f32
// The transposed layouts are the backward GEMMs, read in place: dx = dy w
// is x = dy, w stored [K, N]; dw = dy^T x is both operands stored k-major.
// A workgroup of THREADS_SIDE x THREADS_SIDE threads computes a TILE_M x
// TILE_N block of out; each thread THREAD_M adjacent rows of THREAD_N = 8
// adjacent columns, held in two vec4 registers a row, so every value loaded
// from workgroup memory feeds several multiply-adds. THREAD_M is chosen from
// M so that few-token runs waste few rows. Tiles of x and w, TILE_K deep,
// pass through workgroup memory k-major. Any M, N, K: loads past the edge
// read zeros and stores past it are skipped.
const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;
const TILE_K: u32 = {{TILE_K}}u;
const THREADS_SIDE: u32 = {{THREADS_SIDE}}u;
const THREAD_M: u32 = {{THREAD_M}}u;
const THREAD_N: u32 = 8u;
const HAS_BIAS: u32 = {{HAS_BIAS}}u;
const ACTIVATION: u32 = {{ACTIVATION}}u;
const X_TRANSPOSED: u32 = {{X_TRANSPOSED}}u;
const W_TRANSPOSED: u32 = {{W_TRANSPOSED}}u;
const TILE_M: u32 = THREADS_SIDE * THREAD_M;
const TILE_N: u32 = THREADS_SIDE * THREAD_N;
const THREADS: u32 = THREADS_SIDE * THREADS_SIDE;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// x_tile[k * TILE_M + r], w_tile[k * TILE_N / 4 + c / 4][c % 4].
var<workgroup> x_tile: array<f32, TILE_K * TILE_M>;
var<workgroup> w_tile: array<vec4<f32>, TILE_K * TILE_N / 4u>;

@compute @workgroup_size(THREADS_SIDE, THREADS_SIDE)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N;
    // Row i of this thread: left (columns 0..3) in acc[2 i], right in acc[2 i + 1].
    var acc: array<vec4<f32>, 2u * THREAD_M>;
    for (var k0 = 0u; k0 < K; k0 += TILE_K) {
        // Neighbouring threads read neighbouring elements of memory: along
        // k, or along rows (columns) for an operand stored k-major.
        for (var i = thread; i < TILE_M * TILE_K; i += THREADS) {
            var r = i / TILE_K;
            var k = i % TILE_K;
            if (X_TRANSPOSED == 1u) {
                r = i % TILE_M;
                k = i / TILE_M;
            }
            var v = 0.0;
            if (row0 + r < M && k0 + k < K) {
                if (X_TRANSPOSED == 1u) {
                    v = x[(k0 + k) * M + row0 + r];
                } else {
                    v = x[(row0 + r) * K + k0 + k];
                }
            }
            x_tile[k * TILE_M + r] = v;
        }
        for (var i = thread; i < TILE_N * TILE_K; i += THREADS) {
            var c = i / TILE_K;
            var k = i % TILE_K;
            if (W_TRANSPOSED == 1u) {
                c = i % TILE_N;
                k = i / TILE_N;
            }
            var v = 0.0;
            if (col0 + c < N && k0 + k < K) {
                if (W_TRANSPOSED == 1u) {
                    v = w[(k0 + k) * N + col0 + c];
                } else {
                    v = w[(col0 + c) * K + k0 + k];
                }
            }
            w_tile[(k * TILE_N + c) / 4u][c % 4u] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            let left = w_tile[(k * TILE_N) / 4u + 2u * local.x];
            let right = w_tile[(k * TILE_N) / 4u + 2u * local.x + 1u];
            for (var i = 0u; i < THREAD_M; i++) {
                let a = vec4<f32>(x_tile[k * TILE_M + local.y * THREAD_M + i]);
                acc[2u * i] = fma(a, left, acc[2u * i]);
                acc[2u * i + 1u] = fma(a, right, acc[2u * i + 1u]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < THREAD_M; i++) {
        let r = row0 + local.y * THREAD_M + i;
        for (var j = 0u; j < THREAD_N; j++) {
            let c = col0 + local.x * THREAD_N + j;
            if (r < M && c < N) {
                var v = acc[2u * i + j / 4u][j % 4u];
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
