// adamw: one AdamW update of a parameter in place, as PyTorch's AdamW
// computes it: decoupled weight decay first (DECAY 1; never on biases and
// LayerNorm weights), then the moments, then the bias-corrected step; the
// gradient, scaled by clip's factor, is zeroed for the next step's sums.
// Inputs:  scalars [5] f32 (learning rate, 1 - beta1^t, sqrt(1 - beta2^t),
//          gradient_scale, max_norm), state [2] f32 (clip's: norm, factor)
// Output:  param, gradient, m, v [COUNT] f32, read and written in place
const COUNT: u32 = {{COUNT}}u;
const DECAY: u32 = {{DECAY}}u;
const BETA1: f32 = {{BETA1}};
const BETA2: f32 = {{BETA2}};
const EPS: f32 = {{EPS}};
const WEIGHT_DECAY: f32 = {{WEIGHT_DECAY}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> scalars: array<f32>;
@group(0) @binding(1) var<storage, read> state: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradient: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= COUNT) {
        return;
    }
    let lr = scalars[0];
    let g = gradient[index] * state[1];
    var p = param[index];
    if (DECAY == 1u) {
        p *= 1.0 - lr * WEIGHT_DECAY;
    }
    let m_new = BETA1 * m[index] + (1.0 - BETA1) * g;
    let v_new = BETA2 * v[index] + (1.0 - BETA2) * g * g;
    let denominator = sqrt(v_new) / scalars[2] + EPS;
    param[index] = p - lr / scalars[1] * m_new / denominator;
    m[index] = m_new;
    v[index] = v_new;
    gradient[index] = 0.0;
}
