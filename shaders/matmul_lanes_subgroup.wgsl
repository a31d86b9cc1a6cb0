// matmul_lanes' entry point where the 16 rows are loaded once per 8 lanes of
// a subgroup and handed to every lane by subgroupBroadcast at constant lane
// indices: 2 vec4 loads a lane in place of 16. (naga 30 takes subgroup
// built-ins without WGSL's `enable subgroups;`, which it rejects.) Needs subgroups of at least
// 8 lanes (codegen emits it only for such adapters, and the runtime refuses
// it elsewhere); lanes 8 and up load rows that are never broadcast. Every
// lane of a workgroup works on the same rows and reaches the broadcasts
// (the loop over k is the same for all), as subgroupBroadcast requires.
@compute @workgroup_size(LANES)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    run(group, local, lane);
}

fn load_rows(r: u32, k: u32, lane: u32) -> Rows {
    let i = lane % 8u;
    if (X_TRANSPOSED == 1u) {
        // Lane i holds k + i % 4 at rows r + 4 (i / 4) .. + 4, and 8 rows on.
        let a = xt4(k + i % 4u, r + 4u * (i / 4u));
        let b = xt4(k + i % 4u, r + 8u + 4u * (i / 4u));
        return transposed_rows(
            subgroupBroadcast(a, 0u), subgroupBroadcast(a, 4u), subgroupBroadcast(b, 0u), subgroupBroadcast(b, 4u),
            subgroupBroadcast(a, 1u), subgroupBroadcast(a, 5u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 5u),
            subgroupBroadcast(a, 2u), subgroupBroadcast(a, 6u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 6u),
            subgroupBroadcast(a, 3u), subgroupBroadcast(a, 7u), subgroupBroadcast(b, 3u), subgroupBroadcast(b, 7u),
        );
    }
    // Lane i holds rows r + i and r + 8 + i.
    let a = x4(r + i, k);
    let b = x4(r + 8u + i, k);
    return Rows(
        subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
        subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
        subgroupBroadcast(b, 0u), subgroupBroadcast(b, 1u), subgroupBroadcast(b, 2u), subgroupBroadcast(b, 3u),
        subgroupBroadcast(b, 4u), subgroupBroadcast(b, 5u), subgroupBroadcast(b, 6u), subgroupBroadcast(b, 7u),
    );
}
