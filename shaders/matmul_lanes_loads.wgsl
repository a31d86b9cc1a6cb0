
// matmul_lanes' entry point where every lane loads the 16 rows itself.
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    run(group, local, 0u);
}

// 16 vec4 loads a lane.
fn load_rows(r: u32, k: u32, lane: u32) -> Rows {
    if (X_TRANSPOSED == 1u) {
        // 16 rows a k in 4 vec4s, for k .. k + 3 (p, q, s, u).
        let p0 = xt4(k, r);
        let p1 = xt4(k, r + 4u);
        let p2 = xt4(k, r + 8u);
        let p3 = xt4(k, r + 12u);
        let q0 = xt4(k + 1u, r);
        let q1 = xt4(k + 1u, r + 4u);
        let q2 = xt4(k + 1u, r + 8u);
        let q3 = xt4(k + 1u, r + 12u);
        let s0 = xt4(k + 2u, r);
        let s1 = xt4(k + 2u, r + 4u);
        let s2 = xt4(k + 2u, r + 8u);
        let s3 = xt4(k + 2u, r + 12u);
        let u0 = xt4(k + 3u, r);
        let u1 = xt4(k + 3u, r + 4u);
        let u2 = xt4(k + 3u, r + 8u);
        let u3 = xt4(k + 3u, r + 12u);
        return transposed_rows(p0, p1, p2, p3, q0, q1, q2, q3, s0, s1, s2, s3, u0, u1, u2, u3);
    }
    return Rows(
        x4(r, k), x4(r + 1u, k), x4(r + 2u, k), x4(r + 3u, k),
        x4(r + 4u, k), x4(r + 5u, k), x4(r + 6u, k), x4(r + 7u, k),
        x4(r + 8u, k), x4(r + 9u, k), x4(r + 10u, k), x4(r + 11u, k),
        x4(r + 12u, k), x4(r + 13u, k), x4(r + 14u, k), x4(r + 15u, k),
    );
}
