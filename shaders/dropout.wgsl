// dropout: inverted dropout, forward and backward alike (the backward is the
// same function of dy: the mask is regenerated, never stored). Element i is
// kept when the first word of Philox4x32-10 at counter (i, 0, stream low,
// stream high) under key (seed low, seed high) is at least THRESHOLD =
// ceil(p 2^32), which is the reference's test "word / 2^32 >= p" in
// integers: the same mask on every adapter and on the CPU. A kept element is
// scaled by SCALE = 1 / (1 - p).
// The stream is (step << 32) | (micro-batch << 16) | SITE, from the key
// [seed low, seed high, step, micro-batch].
// Inputs:  a [COUNT] f32, key [4] u32
// Output:  out [COUNT] f32
const COUNT: u32 = {{COUNT}}u;
const SITE: u32 = {{SITE}}u;
const THRESHOLD: u32 = {{THRESHOLD}}u;
const SCALE: f32 = {{SCALE}};
const WORKGROUP: u32 = {{WORKGROUP}}u;
const GROUPS_X: u32 = {{GROUPS_X}}u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> key: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// The high and low words of the 64-bit product a b, from 16-bit halves
// (WGSL has no 64-bit integers).
fn multiply_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let low_low = a0 * b0;
    let low_high = a0 * b1;
    let high_low = a1 * b0;
    let middle = (low_low >> 16u) + (low_high & 0xffffu) + (high_low & 0xffffu);
    let high = a1 * b1 + (low_high >> 16u) + (high_low >> 16u) + (middle >> 16u);
    return vec2<u32>(high, a * b);
}

fn philox4x32_10(counter: vec4<u32>, seed: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = seed;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k += vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
        }
        let p0 = multiply_wide(0xd2511f53u, c.x);
        let p1 = multiply_wide(0xcd9e8d57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * GROUPS_X * WORKGROUP + gid.x;
    if (index >= COUNT) {
        return;
    }
    let stream_low = (key[3] << 16u) | SITE;
    let stream_high = key[2] | (key[3] >> 16u);
    let word = philox4x32_10(vec4<u32>(index, 0u, stream_low, stream_high), vec2<u32>(key[0], key[1])).x;
    out[index] = select(0.0, a[index] * SCALE, word >= THRESHOLD);
}
