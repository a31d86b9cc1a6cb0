// table_parts: a fragment, not a kernel: element `column` of row `id` of a
// table split by rows over the bindings table0 .. table5, ROWS_PER_PART rows
// a part, each row WIDTH wide (kernels that read a table too big for one
// binding: gather, embeddings), and those bindings, the kernel's first six.
// Codegen appends it.
@group(0) @binding(0) var<storage, read> table0: array<f32>;
@group(0) @binding(1) var<storage, read> table1: array<f32>;
@group(0) @binding(2) var<storage, read> table2: array<f32>;
@group(0) @binding(3) var<storage, read> table3: array<f32>;
@group(0) @binding(4) var<storage, read> table4: array<f32>;
@group(0) @binding(5) var<storage, read> table5: array<f32>;

fn table_value(id: u32, column: u32) -> f32 {
    let at = (id % ROWS_PER_PART) * WIDTH + column;
    switch (id / ROWS_PER_PART) {
        case 0u: { return table0[at]; }
        case 1u: { return table1[at]; }
        case 2u: { return table2[at]; }
        case 3u: { return table3[at]; }
        case 4u: { return table4[at]; }
        default: { return table5[at]; }
    }
}
