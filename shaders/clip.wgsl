// clip: the global gradient norm and the factor every gradient is scaled by
// in the AdamW update, as PyTorch's clip_grad_norm_ computes it: the
// gradients summed over micro-batches are first scaled by gradient_scale
// (1 / accumulation steps), their norm is sqrt(sum of partials) times it,
// and the clipping coefficient max_norm / (norm + 1e-6) is capped at 1.
// Inputs:  partials [PARAMETERS] f32 (square_sum's), scalars [5] f32
//          (learning rate, bias corrections 1 and sqrt 2, gradient_scale, max_norm)
// Output:  state [2] f32: the norm, then coefficient times gradient_scale
// One thread, the partials added in parameter order.
const PARAMETERS: u32 = {{PARAMETERS}}u;

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;

@compute @workgroup_size(1)
fn main() {
    var total = 0.0;
    for (var p = 0u; p < PARAMETERS; p++) {
        total += partials[p];
    }
    let gradient_scale = scalars[3];
    let norm = sqrt(total) * gradient_scale;
    let coefficient = min(scalars[4] / (norm + 1e-6), 1.0);
    state[0] = norm;
    state[1] = coefficient * gradient_scale;
}
