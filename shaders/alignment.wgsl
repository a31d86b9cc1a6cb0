// alignment: how far apart the representations of sentences and their
// translations are. x holds PAIRS rows, then their translations in the same
// order; the loss is the mean over the pairs whose example_mask entry (the
// first row's) is not 0 of mask (1 - cos(a, b)). Chosen by MODE:
//   0: the loss, one thread for the whole batch (out [1]);
//   1: its gradient, one thread a pair writing both rows (out [2 PAIRS, WIDTH]):
//      d/da = -(mask / pairs) (b / (|a| |b|) - cos a / |a|^2), and the same
//      with a and b swapped. A zero row counts as norm 1e-12.
// Inputs:  x [2 PAIRS, WIDTH] f32, example_mask [2 PAIRS] f32
// Output:  out, as the mode says
const PAIRS: u32 = {{PAIRS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> example_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// (a . b, |a|, |b|) of pair `pair`.
fn products(pair: u32) -> vec3<f32> {
    let a = pair * WIDTH;
    let b = (PAIRS + pair) * WIDTH;
    var dot = 0.0;
    var aa = 0.0;
    var bb = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        let p = x[a + k];
        let q = x[b + k];
        dot = fma(p, q, dot);
        aa = fma(p, p, aa);
        bb = fma(q, q, bb);
    }
    return vec3<f32>(dot, max(sqrt(aa), 1e-12), max(sqrt(bb), 1e-12));
}

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
            let p = products(i);
            loss = fma(example_mask[i], 1.0 - p.x / (p.y * p.z), loss);
        }
        out[0] = loss / real;
        return;
    }
    let pair = gid.x;
    if (pair >= PAIRS) {
        return;
    }
    let p = products(pair);
    let cosine = p.x / (p.y * p.z);
    let scale = -example_mask[pair] / real;
    let a = pair * WIDTH;
    let b = (PAIRS + pair) * WIDTH;
    for (var k = 0u; k < WIDTH; k++) {
        let u = x[a + k];
        let v = x[b + k];
        out[a + k] = scale * (v / (p.y * p.z) - cosine * u / (p.y * p.y));
        out[b + k] = scale * (u / (p.y * p.z) - cosine * v / (p.z * p.z));
    }
}
