// square_sum: the sum of squares of one parameter's gradient, the first
// half of the global gradient norm; one workgroup, strided partial sums and
// a tree in workgroup memory: a fixed order, deterministic.
// Inputs:  gradient [COUNT] f32
// Output:  partials [PARAMETERS] f32: element INDEX written
const COUNT: u32 = {{COUNT}}u;
const INDEX: u32 = {{INDEX}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> gradient: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP>;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(local_invocation_index) thread: u32) {
    var sum = 0.0;
    for (var i = thread; i < COUNT; i += WORKGROUP) {
        sum = fma(gradient[i], gradient[i], sum);
    }
    let total = workgroup_reduce(thread, sum, false);
    if (thread == 0u) {
        partials[INDEX] = total;
    }
}
