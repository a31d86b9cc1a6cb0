// tanh: a fragment, not a kernel: tanh for the kernels that apply it
// (activation, head), clamped first because some drivers compute it as
// (e^2x - 1) / (e^2x + 1), which overflows to NaN far out; past
// TANH_SATURATION it is 1 in f32 anyway. Codegen appends it.
const TANH_SATURATION: f32 = 15.0;

fn tanh_saturating(v: f32) -> f32 {
    return tanh(clamp(v, -TANH_SATURATION, TANH_SATURATION));
}
