// gelu: a fragment, not a kernel: the exact GELU, 0.5 x (1 + erf(x / sqrt 2)),
// for the kernels that apply it (activation, matmul). Codegen appends it.
// WGSL has no erf: erfc comes from a Chebyshev fit with fractional error
// below 1.2e-7 (Numerical Recipes' erfcc), which keeps GELU within 1e-7 of
// the exact value relative to |x|.
fn erfc_abs(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + p);
}

fn gelu(v: f32) -> f32 {
    let z = v * 0.70710678118654752;
    let erf_abs = 1.0 - erfc_abs(abs(z));
    return 0.5 * v * (1.0 + sign(z) * erf_abs);
}
