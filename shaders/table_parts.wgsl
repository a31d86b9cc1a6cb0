// table_parts: a fragment, not a kernel: element `column` of row `id` of a
// table split by rows over the bindings table0 .. table5, ROWS_PER_PART rows
// a part, each row WIDTH wide (kernels that read a table too big for one
// binding: gather, embeddings). Codegen appends it.
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
