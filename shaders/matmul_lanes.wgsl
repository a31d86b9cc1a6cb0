// matmul_lanes: out = x times w transposed (+ bias, then GELU with
// ACTIVATION 1), without workgroup memory or barriers, for adapters that
// run lanes as SIMD on a CPU (lavapipe, SwiftShader), where every load
// whose address differs between lanes costs a loop over the lanes: what
// counts is how many multiply-adds each load feeds. A workgroup of 64 lanes
// owns 16 rows and 256 columns, 4 a lane; each lane keeps its 16 x 4 block
// of out in 16 named vec4 accumulators (no indexed arrays, which would live
// in memory). k advances 4 at a time: 16 vec4 loads of x (16 rows x 4 k)
// and a 4 x 4 block of w (4 vec4 loads) feed 256 multiply-adds a lane.
// Inputs:  x [M, K] f32, or with X_TRANSPOSED 1 stored as [K, M];
//          w [N, K] f32 (PyTorch Linear layout), or with W_TRANSPOSED 1
//          stored as [K, N] (the backward: dx = dy w reads w k-major, dw =
//          dy^T x reads both operands k-major);
//          bias [N] f32 (when HAS_BIAS is 0 any buffer is bound, never read)
// Output:  out [M, N] f32, or with OUT_TRANSPOSED 1 stored as [N, M] (dx
//          computed as w^T dy^T: codegen swaps the operands, so w is read
//          as a k-major x and dy as a PyTorch-layout w)
// Codegen uses it where K is a multiple of 4, and M (N) too where x (w) is
// stored k-major, so that every load is an aligned vec4. Rows and columns
// past the edge load in-bounds values that are never stored.
// The entry point and how the 16 rows of x reach a lane (load_rows) come
// from one of two files: matmul_lanes_loads.wgsl (each lane loads all 16)
// or matmul_lanes_subgroup.wgsl (8 lanes load them once and broadcast).
const M: u32 = {{M}}u;
const N: u32 = {{N}}u;
const K: u32 = {{K}}u;
const HAS_BIAS: u32 = {{HAS_BIAS}}u;
const ACTIVATION: u32 = {{ACTIVATION}}u;
const W_TRANSPOSED: u32 = {{W_TRANSPOSED}}u;
const X_TRANSPOSED: u32 = {{X_TRANSPOSED}}u;
const OUT_TRANSPOSED: u32 = {{OUT_TRANSPOSED}}u;
const ROWS: u32 = 16u;
const LANES: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// x[r][k..k + 4].
fn x4(r: u32, k: u32) -> vec4<f32> {
    return x[(min(r, M - 1u) * K + k) / 4u];
}

// x transposed [k][r..r + 4], stored [K, M]; r is a multiple of 4.
fn xt4(k: u32, r: u32) -> vec4<f32> {
    return x[(k * M + min(r, M - 4u)) / 4u];
}

// w[c][k..k + 4] (PyTorch layout).
fn w4(c: u32, k: u32) -> vec4<f32> {
    return w[(min(c, N - 1u) * K + k) / 4u];
}

// w transposed [k][c..c + 4], stored [K, N]; c is a multiple of 4.
fn wt4(k: u32, c: u32) -> vec4<f32> {
    return w[(k * N + min(c, N - 4u)) / 4u];
}

// acc + x's row (4 values along k) times the 4 x 4 block of w whose rows
// t0..t3 are k..k + 3 and whose columns are the lane's 4.
fn block(acc: vec4<f32>, v: vec4<f32>, t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, t3: vec4<f32>) -> vec4<f32> {
    return fma(vec4(v.w), t3, fma(vec4(v.z), t2, fma(vec4(v.y), t1, fma(vec4(v.x), t0, acc))));
}

fn store(r: u32, c: u32, v: vec4<f32>) {
    if (r >= M) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (c + j < N) {
            var o = v[j];
            if (HAS_BIAS == 1u) {
                o += bias[c + j];
            }
            if (ACTIVATION == 1u) {
                o = gelu(o);
            }
            if (OUT_TRANSPOSED == 1u) {
                out[(c + j) * M + r] = o;
            } else {
                out[r * N + c + j] = o;
            }
        }
    }
}

// The 16 rows of x from r, 4 values along k from k, each a vec4.
struct Rows {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
    v4: vec4<f32>,
    v5: vec4<f32>,
    v6: vec4<f32>,
    v7: vec4<f32>,
    v8: vec4<f32>,
    v9: vec4<f32>,
    v10: vec4<f32>,
    v11: vec4<f32>,
    v12: vec4<f32>,
    v13: vec4<f32>,
    v14: vec4<f32>,
    v15: vec4<f32>,
}

// The 16 rows from 16 vec4s along rows (x stored k-major): p at k, q at
// k + 1, s at k + 2, u at k + 3, each 4 rows (0-3, 4-7, 8-11, 12-15).
fn transposed_rows(
    p0: vec4<f32>, p1: vec4<f32>, p2: vec4<f32>, p3: vec4<f32>,
    q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>,
    s0: vec4<f32>, s1: vec4<f32>, s2: vec4<f32>, s3: vec4<f32>,
    u0: vec4<f32>, u1: vec4<f32>, u2: vec4<f32>, u3: vec4<f32>,
) -> Rows {
    return Rows(
        vec4(p0.x, q0.x, s0.x, u0.x), vec4(p0.y, q0.y, s0.y, u0.y),
        vec4(p0.z, q0.z, s0.z, u0.z), vec4(p0.w, q0.w, s0.w, u0.w),
        vec4(p1.x, q1.x, s1.x, u1.x), vec4(p1.y, q1.y, s1.y, u1.y),
        vec4(p1.z, q1.z, s1.z, u1.z), vec4(p1.w, q1.w, s1.w, u1.w),
        vec4(p2.x, q2.x, s2.x, u2.x), vec4(p2.y, q2.y, s2.y, u2.y),
        vec4(p2.z, q2.z, s2.z, u2.z), vec4(p2.w, q2.w, s2.w, u2.w),
        vec4(p3.x, q3.x, s3.x, u3.x), vec4(p3.y, q3.y, s3.y, u3.y),
        vec4(p3.z, q3.z, s3.z, u3.z), vec4(p3.w, q3.w, s3.w, u3.w),
    );
}

// The workgroup's block: rows from group.y * ROWS, the lane's 4 columns;
// lane is its index within its subgroup (0 where none is used).
fn run(group: vec3<u32>, local: vec3<u32>, lane: u32) {
    let r = group.y * ROWS;
    let c = group.x * LANES * 4u + local.x * 4u;
    var a0 = vec4<f32>();
    var a1 = vec4<f32>();
    var a2 = vec4<f32>();
    var a3 = vec4<f32>();
    var a4 = vec4<f32>();
    var a5 = vec4<f32>();
    var a6 = vec4<f32>();
    var a7 = vec4<f32>();
    var a8 = vec4<f32>();
    var a9 = vec4<f32>();
    var a10 = vec4<f32>();
    var a11 = vec4<f32>();
    var a12 = vec4<f32>();
    var a13 = vec4<f32>();
    var a14 = vec4<f32>();
    var a15 = vec4<f32>();
    for (var k = 0u; k < K; k += 4u) {
        var t0: vec4<f32>;
        var t1: vec4<f32>;
        var t2: vec4<f32>;
        var t3: vec4<f32>;
        if (W_TRANSPOSED == 1u) {
            t0 = wt4(k, c);
            t1 = wt4(k + 1u, c);
            t2 = wt4(k + 2u, c);
            t3 = wt4(k + 3u, c);
        } else {
            let w0 = w4(c, k);
            let w1 = w4(c + 1u, k);
            let w2 = w4(c + 2u, k);
            let w3 = w4(c + 3u, k);
            t0 = vec4<f32>(w0.x, w1.x, w2.x, w3.x);
            t1 = vec4<f32>(w0.y, w1.y, w2.y, w3.y);
            t2 = vec4<f32>(w0.z, w1.z, w2.z, w3.z);
            t3 = vec4<f32>(w0.w, w1.w, w2.w, w3.w);
        }
        let v = load_rows(r, k, lane);
        a0 = block(a0, v.v0, t0, t1, t2, t3);
        a1 = block(a1, v.v1, t0, t1, t2, t3);
        a2 = block(a2, v.v2, t0, t1, t2, t3);
        a3 = block(a3, v.v3, t0, t1, t2, t3);
        a4 = block(a4, v.v4, t0, t1, t2, t3);
        a5 = block(a5, v.v5, t0, t1, t2, t3);
        a6 = block(a6, v.v6, t0, t1, t2, t3);
        a7 = block(a7, v.v7, t0, t1, t2, t3);
        a8 = block(a8, v.v8, t0, t1, t2, t3);
        a9 = block(a9, v.v9, t0, t1, t2, t3);
        a10 = block(a10, v.v10, t0, t1, t2, t3);
        a11 = block(a11, v.v11, t0, t1, t2, t3);
        a12 = block(a12, v.v12, t0, t1, t2, t3);
        a13 = block(a13, v.v13, t0, t1, t2, t3);
        a14 = block(a14, v.v14, t0, t1, t2, t3);
        a15 = block(a15, v.v15, t0, t1, t2, t3);
    }
    store(r, c, a0);
    store(r + 1u, c, a1);
    store(r + 2u, c, a2);
    store(r + 3u, c, a3);
    store(r + 4u, c, a4);
    store(r + 5u, c, a5);
    store(r + 6u, c, a6);
    store(r + 7u, c, a7);
    store(r + 8u, c, a8);
    store(r + 9u, c, a9);
    store(r + 10u, c, a10);
    store(r + 11u, c, a11);
    store(r + 12u, c, a12);
    store(r + 13u, c, a13);
    store(r + 14u, c, a14);
    store(r + 15u, c, a15);
}
