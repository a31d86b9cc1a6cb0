// alignment: how far apart the representations of sentences and their
// translations are. x holds PAIRS rows, then their translations in the same
// order; the loss is the mean over the pairs whose example_mask entry (the
// first row's) is not 0 of mask (1 - cos(a, b)); its gradient, for a pair,
// d/da = -(mask / pairs) (b / (|a| |b|) - cos a / |a|^2), and the same with
// a and b swapped. A zero row counts as norm 1e-12. The modes and the entry
// point: pair_loss_main.wgsl.
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

// 1 - cos(a, b) of pair `pair`.
fn pair_loss(pair: u32) -> f32 {
    let p = products(pair);
    return 1.0 - p.x / (p.y * p.z);
}

// d/da = -(b / (|a| |b|) - cos a / |a|^2), and the same with a and b
// swapped, times `scale`.
fn write_gradient(pair: u32, scale: f32) {
    let p = products(pair);
    let cosine = p.x / (p.y * p.z);
    let a = pair * WIDTH;
    let b = (PAIRS + pair) * WIDTH;
    for (var k = 0u; k < WIDTH; k++) {
        let u = x[a + k];
        let v = x[b + k];
        out[a + k] = -scale * (v / (p.y * p.z) - cosine * u / (p.y * p.y));
        out[b + k] = -scale * (u / (p.y * p.z) - cosine * v / (p.z * p.z));
    }
}
