// activation: an element-wise function, chosen by FUNCTION:
//   0: the exact GELU, 0.5 x (1 + erf(x / sqrt 2));  1: tanh.
// Inputs:  x [COUNT] f32
// Output:  out [COUNT] f32
// gelu() and tanh_saturating() come from fragments codegen appends.
const COUNT: u32 = {{COUNT}}u;
const FUNCTION: u32 = {{FUNCTION}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= COUNT) {
        return;
    }
    let v = x[index];
    if (FUNCTION == 0u) {
        out[index] = gelu(v);
    } else {
        out[index] = tanh_saturating(v);
    }
}
