
// The entry point of a loss over pairs of rows (alignment.wgsl,
// symmetric_kl.wgsl): x holds PAIRS rows, then their partners in the same
// order, and a pair weighs its example_mask entry (the first row's; 0: not
// a pair). Each template defines pair_loss(pair), the pair's unweighted
// loss, and write_gradient(pair, scale), which writes both of its rows'
// gradients times `scale`. The loss is the mean over the real pairs of
// mask times pair_loss. Chosen by MODE:
//   0: the loss, one thread for the whole batch (out [1]);
//   1: its gradient, one thread a pair (out [2 PAIRS, WIDTH]), scale
//      mask / (the number of real pairs).
@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var real = 0.0;
    for (var i = 0u; i < PAIRS; i++) {
        real += select(0.0, 1.0, example_mask[i] != 0.0);
    }
    real = max(real, 1.0);
    if (MODE == 0u) {
        if (gid.x != 0u) {
            return;
        }
        var loss = 0.0;
        for (var i = 0u; i < PAIRS; i++) {
            loss = fma(example_mask[i], pair_loss(i), loss);
        }
        out[0] = loss / real;
        return;
    }
    let pair = gid.x;
    if (pair >= PAIRS) {
        return;
    }
    write_gradient(pair, example_mask[pair] / real);
}
