// activation_backward: the gradient of an element-wise function, chosen by
// FUNCTION:
//   0: the exact GELU's, from its input a = x: dy (Phi(x) + x phi(x));
//   1: tanh's, from its output a = y: dy (1 - y^2).
// Inputs:  a [COUNT] f32, dy [COUNT] f32
// Output:  out [COUNT] f32
// erfc_abs() comes from the gelu fragment codegen appends.
const COUNT: u32 = {{COUNT}}u;
const FUNCTION: u32 = {{FUNCTION}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= COUNT) {
        return;
    }
    let v = a[index];
    if (FUNCTION == 0u) {
        let z = v * 0.70710678118654752;
        let cdf = 0.5 * (1.0 + sign(z) * (1.0 - erfc_abs(abs(z))));
        let pdf = INV_SQRT_2PI * exp(-0.5 * v * v);
        out[index] = dy[index] * (cdf + v * pdf);
    } else {
        out[index] = dy[index] * (1.0 - v * v);
    }
}
