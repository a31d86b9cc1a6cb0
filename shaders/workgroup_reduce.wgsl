// workgroup_reduce: a fragment, not a kernel: the sum (or, with take_max,
// the maximum) of one value from each of WORKGROUP threads, by a tree in
// workgroup memory. The kernel that uses it declares WORKGROUP (a power of
// two) and `var<workgroup> partial: array<f32, WORKGROUP>`. Codegen appends it.
fn workgroup_reduce(thread: u32, value: f32, take_max: bool) -> f32 {
    partial[thread] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (thread < stride) {
            let other = partial[thread + stride];
            partial[thread] = select(partial[thread] + other, max(partial[thread], other), take_max);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
