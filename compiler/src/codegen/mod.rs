//! Codegen: a graph becomes a [`Program`] of specialised WGSL kernels, one
//! dispatch an op, each output in a buffer of its own. Identical kernel
//! instances share one module; every module is validated with naga.

mod kernels;
mod memory;
mod templates;
mod training;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use xltc_runtime::inputs::ORDER_SUFFIX;
use xltc_runtime::program::{
    Binding, BufferRole, BufferSpec, Dispatch, IdBound, KernelSpec, OutputSpec, WeightSlice,
};
use xltc_runtime::Program;

use crate::ir::{Graph, Op, Source, ValueId};

pub use kernels::{gemm_of, GemmKernel, GemmKey};
pub use templates::Template;
pub use training::{lower_optimizer, lower_train_step, optimizer_input, OPTIMIZER_INPUT};
pub use validate::validate_wgsl;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error("kernel {kernel}: naga rejects the emitted WGSL (a compiler bug):\n{message}")]
    InvalidWgsl { kernel: String, message: String },
    #[error(
        "{value} needs {bytes} bytes in one binding, past the limit of {limit} bytes; \
         compile for a smaller batch or sequence bucket, or a larger --max-binding-bytes \
         if the target adapter allows it"
    )]
    TooLarge {
        value: String,
        bytes: u64,
        limit: u64,
    },
    #[error("{value}: {why}")]
    Unsupported { value: String, why: String },
}

/// WebGPU's default maxStorageBufferBindingSize: what every browser allows.
pub const WEBGPU_MAX_BINDING_BYTES: u64 = 128 << 20;

#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// The largest storage binding a kernel may use.
    pub max_binding_bytes: u64,
    /// The kernel of every GEMM that no tuned choice names; a lane kernel
    /// only where the GEMM's rows along k are whole vec4s, else the tiled
    /// one.
    pub gemm: GemmKernel,
    /// The kernel `xltc compile --tune` chose for a GEMM, in place of
    /// `gemm`.
    pub tuned_gemms: BTreeMap<GemmKey, GemmKernel>,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        Self {
            max_binding_bytes: WEBGPU_MAX_BINDING_BYTES,
            gemm: GemmKernel::Lanes,
            tuned_gemms: BTreeMap::new(),
        }
    }
}

impl CodegenOptions {
    /// For programs compiled to run now, on `adapter`: the subgroup lane
    /// GEMM where its subgroups have the 8 lanes it broadcasts from (the
    /// same sums in the same order as the lane kernel, so the same bits;
    /// 2.6x its GFLOP/s on lavapipe), else the defaults. An artifact keeps
    /// the defaults unless asked (`compile --subgroup-gemm` or `--tune`): it
    /// may run elsewhere.
    pub fn for_adapter(adapter: &xltc_runtime::AdapterReport) -> Self {
        let gemm = match adapter.subgroup_min_size >= 8 {
            true => GemmKernel::LanesSubgroup,
            false => GemmKernel::Lanes,
        };
        Self {
            gemm,
            ..Self::default()
        }
    }
}

/// A program and the weights its weight buffers are filled with, by name.
pub struct Compiled {
    pub program: Program,
    pub weights: BTreeMap<String, Arc<[f32]>>,
}

impl Compiled {
    pub fn weight(&self, name: &str) -> Option<&[f32]> {
        self.weights.get(name).map(|w| &w[..])
    }
}

pub fn lower(graph: &Graph, options: &CodegenOptions) -> Result<Compiled, CodegenError> {
    lower_with(graph, options, &BTreeMap::new())
}

/// As [`lower`]; each value of `accumulate` (a parameter's gradient) is
/// also added, right after its kernel, into the gradient buffer of the
/// parameter it names.
fn lower_with(
    graph: &Graph,
    options: &CodegenOptions,
    accumulate: &BTreeMap<ValueId, String>,
) -> Result<Compiled, CodegenError> {
    let mut program = Program {
        batch: graph.batch,
        seq: graph.seq,
        ..Default::default()
    };
    let mut weights = BTreeMap::new();
    // A table's gradient that nothing else reads is added by its kernel
    // straight into the gradient buffers, one dispatch a part of the table
    // (as many as its weight has): no activation of the table's size, no
    // zeroing, no pass over untouched rows.
    let last_use = graph.last_uses();
    let direct: BTreeSet<ValueId> = accumulate
        .keys()
        .copied()
        .filter(|&id| {
            let source = &graph.value(id).source;
            matches!(source, Source::Op(Op::GatherBackward { .. }))
                && last_use[id.index()] == id.index()
        })
        .collect();
    let saved = saved_statistics(graph);
    let kept: BTreeSet<ValueId> = saved.values().copied().collect();
    let value_buffers =
        allocate_buffers(graph, options, &mut program, &mut weights, &direct, &saved)?;
    let order_buffers = order_buffers(graph, &mut program)?;
    let mut gradient_buffers: BTreeMap<ValueId, Vec<(Range<usize>, usize)>> = BTreeMap::new();
    for (&id, parameter) in accumulate {
        let shape = &graph.value(id).shape;
        for part in parameter_parts(parameter, shape, options.max_binding_bytes)? {
            let bytes = part.slice.count as u64 * 4;
            let role = BufferRole::Gradient(part.slice);
            let label = format!("grad {}", part.label);
            let buffer = push_buffer(&mut program, label, bytes, role);
            gradient_buffers
                .entry(id)
                .or_default()
                .push((part.rows, buffer));
        }
    }
    let mut kernel_ids: BTreeMap<String, usize> = BTreeMap::new();
    for (id, value) in graph.values() {
        let Source::Op(op) = &value.source else {
            continue;
        };
        if let (true, Op::GatherBackward { dy, ids, .. }) = (direct.contains(&id), op) {
            let read = |buffer| Binding {
                buffer,
                read_only: true,
            };
            let reads = [
                read(value_buffers[dy.index()][0]),
                read(value_buffers[ids.index()][0]),
                read(order_buffers[ids]),
            ];
            for (part, (rows, buffer)) in gradient_buffers[&id].iter().enumerate() {
                let instance = kernels::gather_backward(graph, *dy, *ids, rows.clone(), true);
                let kernel = add_kernel(&mut program, &mut kernel_ids, &instance)?;
                let sum = Binding {
                    buffer: *buffer,
                    read_only: false,
                };
                program.dispatches.push(Dispatch {
                    kernel,
                    bindings: [&reads[..], &[sum]].concat(),
                    workgroups: instance.workgroups,
                    // Each part sums the rows of its ids only: dy's adds
                    // counted once, on the first.
                    flops: if part == 0 { graph.op_flops(id) } else { 0 },
                });
            }
            continue;
        }
        if kept.contains(&id) {
            // Written by the kernel of the op that saves it.
            continue;
        }
        let mut instance = kernels::instance(graph, id, op, options);
        let statistics = saved.get(&id).map(|&kept| {
            instance.template = Template::LayerNormSaving;
            kept
        });
        let output = Binding {
            buffer: value_buffers[id.index()][0],
            read_only: false,
        };
        if instance.zeroed {
            let fill = kernels::over_buffer(Template::Fill, value.elements());
            let kernel = add_kernel(&mut program, &mut kernel_ids, &fill)?;
            program.dispatches.push(Dispatch {
                kernel,
                bindings: vec![output],
                workgroups: fill.workgroups,
                flops: 0,
            });
        }
        let kernel = add_kernel(&mut program, &mut kernel_ids, &instance)?;
        let mut bindings = Vec::new();
        for (position, read) in instance.reads.iter().enumerate() {
            let parts = &value_buffers[read.index()];
            let table = matches!(instance.template, Template::Gather | Template::Embeddings);
            let slots = if table && position == 0 {
                memory::TABLE_PARTS
            } else {
                1
            };
            for slot in 0..slots {
                let buffer = *parts.get(slot).unwrap_or(&parts[0]);
                bindings.push(Binding {
                    buffer,
                    read_only: true,
                });
            }
        }
        if let Op::GatherBackward { ids, .. } = op {
            bindings.push(Binding {
                buffer: order_buffers[ids],
                read_only: true,
            });
        }
        bindings.push(output);
        let mut flops = graph.op_flops(id);
        if let Some(statistics) = statistics {
            bindings.push(Binding {
                buffer: value_buffers[statistics.index()][0],
                read_only: false,
            });
            flops += graph.op_flops(statistics);
        }
        program.dispatches.push(Dispatch {
            kernel,
            bindings,
            workgroups: instance.workgroups,
            flops,
        });
        if let Some(&[(_, gradient)]) = gradient_buffers.get(&id).map(|g| &g[..]) {
            let add = kernels::over_buffer(Template::Accumulate, value.elements());
            let kernel = add_kernel(&mut program, &mut kernel_ids, &add)?;
            let read = Binding {
                read_only: true,
                ..output
            };
            let sum = Binding {
                buffer: gradient,
                read_only: false,
            };
            program.dispatches.push(Dispatch {
                kernel,
                bindings: vec![read, sum],
                workgroups: add.workgroups,
                flops: value.elements() as u64,
            });
        }
    }
    program.id_bounds = id_bounds(graph);
    for (name, id) in graph.outputs() {
        program.outputs.push(OutputSpec {
            name: name.clone(),
            buffer: value_buffers[id.index()][0],
            shape: graph.value(*id).shape.clone(),
        });
    }
    Ok(Compiled { program, weights })
}

/// The index of `instance`'s kernel in the program: a module already
/// emitted for the same WGSL, or a new one, validated with naga.
pub(super) fn add_kernel(
    program: &mut Program,
    kernel_ids: &mut BTreeMap<String, usize>,
    instance: &kernels::KernelInstance,
) -> Result<usize, CodegenError> {
    let wgsl = instance.template.specialise(&instance.constants);
    let next = program.kernels.len();
    let kernel = *kernel_ids.entry(wgsl.clone()).or_insert(next);
    if kernel == next {
        let name = kernel_name(instance);
        validate_wgsl(&wgsl).map_err(|message| CodegenError::InvalidWgsl {
            kernel: name.clone(),
            message,
        })?;
        program.kernels.push(KernelSpec {
            name,
            wgsl,
            min_subgroup_size: instance.template.min_subgroup_size(),
        });
    }
    Ok(kernel)
}

/// Buffers for every value a kernel binds: one per input (or packed
/// inputs), one per weight (or packed weights, or one per part of a split
/// table), and the planned activation buffers. Returns each value's buffers;
/// none for a value only read as a piece of a packed one.
fn allocate_buffers(
    graph: &Graph,
    options: &CodegenOptions,
    program: &mut Program,
    weights: &mut BTreeMap<String, Arc<[f32]>>,
    direct: &BTreeSet<ValueId>,
    saved: &BTreeMap<ValueId, ValueId>,
) -> Result<Vec<Vec<usize>>, CodegenError> {
    let limit = options.max_binding_bytes;
    let plan = memory::plan_activations(graph, direct, saved);
    let first_slot = program.buffers.len();
    for (slot, &bytes) in plan.slot_bytes.iter().enumerate() {
        program.buffers.push(BufferSpec {
            name: format!("activations #{slot}"),
            bytes,
            role: BufferRole::Activation,
        });
    }
    let bound = bound_values(graph);
    let tables = tables(graph);
    let mut value_buffers = Vec::new();
    for (id, value) in graph.values() {
        if let Source::Weight(data) = &value.source {
            weights.insert(value.name.clone(), data.clone());
        }
        let bytes = value.elements() as u64 * 4;
        let too_large = || CodegenError::TooLarge {
            value: value.name.clone(),
            bytes,
            limit,
        };
        if !bound[id.index()] || direct.contains(&id) {
            value_buffers.push(Vec::new());
            continue;
        }
        if bytes > limit && !tables.contains(&id) {
            return Err(too_large());
        }
        let pieces = match &value.source {
            Source::Concat(pieces) => pieces.clone(),
            _ => vec![id],
        };
        let buffers = match &graph.value(pieces[0]).source {
            Source::Op(_) => {
                let slot = plan.slot_of[id.index()].expect("every op value is planned");
                vec![first_slot + slot]
            }
            Source::Input(_) => {
                let names = pieces.iter().map(|&p| match graph.value(p).source {
                    Source::Input(input) => input.name().to_owned(),
                    _ => unreachable!("concat of inputs and others"),
                });
                let role = BufferRole::Input(names.collect());
                vec![push_buffer(program, value.name.clone(), bytes, role)]
            }
            _ => {
                let pieces: Vec<(&str, usize)> = pieces
                    .iter()
                    .map(|&p| (graph.value(p).name.as_str(), graph.value(p).elements()))
                    .collect();
                weight_parts(program, &value.name, &value.shape, &pieces, limit)
                    .ok_or_else(too_large)?
            }
        };
        value_buffers.push(buffers);
    }
    Ok(value_buffers)
}

/// The derived input buffer (`<ids>.order`, [`ORDER_SUFFIX`]) of the ids
/// every gather gradient reads, by the ids' value.
fn order_buffers(
    graph: &Graph,
    program: &mut Program,
) -> Result<BTreeMap<ValueId, usize>, CodegenError> {
    let mut buffers = BTreeMap::new();
    for (id, value) in graph.values() {
        let Source::Op(Op::GatherBackward { ids, .. }) = &value.source else {
            continue;
        };
        if buffers.contains_key(ids) {
            continue;
        }
        let Source::Input(input) = graph.value(*ids).source else {
            return Err(CodegenError::Unsupported {
                value: graph.value(id).name.clone(),
                why: "a gather's gradient reads ids that are no graph input".to_owned(),
            });
        };
        let name = format!("{}{ORDER_SUFFIX}", input.name());
        let bytes = graph.value(*ids).elements() as u64 * 4;
        let role = BufferRole::Input(vec![name.clone()]);
        buffers.insert(*ids, push_buffer(program, name, bytes, role));
    }
    Ok(buffers)
}

/// The statistics a LayerNorm's kernel saves beside its output, by the
/// LayerNorm: a LayerNormStatistics (which a training graph's backward
/// reads) of the value a LayerNorm with the same eps normalises. The
/// forward's kernel writes them, as llm.c's layernorm_forward writes mean
/// and rstd, so no kernel of the backward reads x again for them; they are
/// the sums layer_norm_statistics makes, in its order, so the same bits.
fn saved_statistics(graph: &Graph) -> BTreeMap<ValueId, ValueId> {
    let mut norms: BTreeMap<ValueId, (ValueId, f32)> = BTreeMap::new();
    let mut saved = BTreeMap::new();
    for (id, value) in graph.values() {
        match value.source {
            Source::Op(Op::LayerNorm { x, eps, .. }) => {
                norms.entry(x).or_insert((id, eps));
            }
            Source::Op(Op::LayerNormStatistics { x, eps }) => {
                if let Some(&(norm, norm_eps)) = norms.get(&x) {
                    if norm_eps == eps {
                        saved.entry(norm).or_insert(id);
                    }
                }
            }
            _ => {}
        }
    }
    saved
}

/// Which values a kernel binds: every op's value (its kernel writes it),
/// and every value an op reads.
fn bound_values(graph: &Graph) -> Vec<bool> {
    let mut bound = vec![false; graph.values().count()];
    for (id, value) in graph.values() {
        if let Source::Op(op) = &value.source {
            bound[id.index()] = true;
            for operand in op.operands() {
                bound[operand.index()] = true;
            }
        }
    }
    bound
}

pub(super) fn push_buffer(
    program: &mut Program,
    name: String,
    bytes: u64,
    role: BufferRole,
) -> usize {
    program.buffers.push(BufferSpec { name, bytes, role });
    program.buffers.len() - 1
}

/// The row ranges of a [rows, width] table's parts under a binding limit
/// of `limit` bytes (one part when it fits); None past [`memory::TABLE_PARTS`].
pub(super) fn row_parts(rows: usize, width: usize, limit: u64) -> Option<Vec<Range<usize>>> {
    let (rows_per_part, parts) = memory::table_parts(rows, width, limit);
    (parts <= memory::TABLE_PARTS).then(|| {
        (0..parts)
            .map(|part| part * rows_per_part..((part + 1) * rows_per_part).min(rows))
            .collect()
    })
}

/// One part of a parameter's buffers (its weight, gradient and moments).
pub(super) struct ParameterPart {
    /// Its rows of the [rows, width] parameter (a vector is one row).
    pub rows: Range<usize>,
    pub slice: WeightSlice,
    /// The parameter's name, with the rows where it takes several parts.
    pub label: String,
}

/// The parts parameter `name` of `shape` takes under a binding limit of
/// `limit` bytes: one where it fits, else the row parts [`row_parts`] gives
/// its weight. Too large where a part cannot fit (a vector past the limit)
/// or a table takes more than [`memory::TABLE_PARTS`] parts.
pub(super) fn parameter_parts(
    name: &str,
    shape: &[usize],
    limit: u64,
) -> Result<Vec<ParameterPart>, CodegenError> {
    let elements: usize = shape.iter().product();
    let (rows, width) = match *shape {
        [rows, width] => (rows, width),
        _ => (1, elements),
    };
    let too_large = || CodegenError::TooLarge {
        value: name.to_owned(),
        bytes: elements as u64 * 4,
        limit,
    };
    let ranges = row_parts(rows, width, limit).ok_or_else(too_large)?;
    if (ranges[0].len() * width) as u64 * 4 > limit {
        return Err(too_large());
    }
    let whole = ranges.len() == 1;
    Ok(ranges
        .into_iter()
        .map(|rows| ParameterPart {
            slice: WeightSlice {
                name: name.to_owned(),
                first: rows.start * width,
                count: rows.len() * width,
            },
            label: if whole {
                name.to_owned()
            } else {
                format!("{name}[rows {}..{}]", rows.start, rows.end)
            },
            rows,
        })
        .collect())
}

/// A weight's buffers: the whole weight, or row parts of a table that does
/// not fit one binding; each filled from `pieces` (checkpoint weights by
/// name and length, laid end to end). None when it takes too many parts.
fn weight_parts(
    program: &mut Program,
    name: &str,
    shape: &[usize],
    pieces: &[(&str, usize)],
    limit: u64,
) -> Option<Vec<usize>> {
    let (rows, width) = match *shape {
        [rows, width] => (rows, width),
        _ => (1, shape.iter().product()),
    };
    let parts = row_parts(rows, width, limit)?;
    let whole = parts.len() == 1;
    let buffers = parts.into_iter().map(|rows| {
        let label = if whole {
            name.to_owned()
        } else {
            format!("{name}[rows {}..{}]", rows.start, rows.end)
        };
        let role = BufferRole::Weight(slices(pieces, rows.start * width, rows.len() * width));
        push_buffer(program, label, (rows.len() * width * 4) as u64, role)
    });
    Some(buffers.collect())
}

/// Elements `first..first + count` of `pieces` laid end to end, as slices
/// of the pieces.
fn slices(pieces: &[(&str, usize)], first: usize, count: usize) -> Vec<WeightSlice> {
    let end = first + count;
    let mut out = Vec::new();
    let mut start = 0;
    for &(name, len) in pieces {
        let (from, to) = (first.max(start), end.min(start + len));
        if from < to {
            out.push(WeightSlice {
                name: name.to_owned(),
                first: from - start,
                count: to - from,
            });
        }
        start += len;
    }
    out
}

/// Every id input that indexes a table, with the rows of its table: the ids
/// of gathers, and the three kinds of ids of fused embeddings.
fn id_bounds(graph: &Graph) -> Vec<IdBound> {
    let mut bounds = Vec::new();
    let mut bound = |ids: ValueId, table: &str, rows: usize| {
        if let Source::Input(input) = graph.value(ids).source {
            bounds.push(IdBound {
                input: input.name().to_owned(),
                table: table.to_owned(),
                rows: rows as u32,
            });
        }
    };
    for (_, value) in graph.values() {
        match value.source {
            Source::Op(Op::Gather { table, ids }) => {
                let table = graph.value(table);
                bound(ids, &table.name, table.shape[0]);
            }
            Source::Op(Op::Embeddings {
                table,
                ids,
                words,
                types,
                ..
            }) => {
                let (Source::Concat(tables), Source::Concat(ids)) =
                    (&graph.value(table).source, &graph.value(ids).source)
                else {
                    panic!("fused embeddings read packed tables and ids");
                };
                let positions = Op::position_rows(graph.value(table).shape[0], words, types);
                for (kind, rows) in [words, types, positions].into_iter().enumerate() {
                    bound(ids[kind], &graph.value(tables[kind]).name, rows);
                }
            }
            _ => {}
        }
    }
    bounds
}

/// Weights read only as tables by gathers or fused embeddings: the ones
/// that may be split by rows over several bindings.
fn tables(graph: &Graph) -> Vec<ValueId> {
    let mut tables = Vec::new();
    let mut other_reads = Vec::new();
    for (_, value) in graph.values() {
        if let Source::Op(op) = &value.source {
            match *op {
                Op::Gather { table, ids } | Op::Embeddings { table, ids, .. } => {
                    tables.push(table);
                    other_reads.push(ids);
                }
                _ => other_reads.extend(op.operands()),
            }
        }
    }
    tables.retain(|t| !other_reads.contains(t));
    tables
}

/// e.g. `matmul[K=36,M=24,N=108,...]`: the family and its constants.
fn kernel_name(instance: &kernels::KernelInstance) -> String {
    let constants: Vec<String> = instance
        .constants
        .iter()
        .filter(|(name, _)| !matches!(*name, "WORKGROUP" | "GROUPS_X"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    format!("{}[{}]", instance.template.name(), constants.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(g: &mut Graph, name: &str, shape: Vec<usize>) -> ValueId {
        let n = shape.iter().product();
        g.weight(name, shape, vec![0.5; n].into())
    }

    /// A product nobody reads still has a buffer its kernel writes.
    #[test]
    fn every_op_writes_a_buffer_even_one_nobody_reads() {
        let mut g = Graph::new(1, 1);
        let x = weight(&mut g, "x", vec![2, 3]);
        let w = weight(&mut g, "w", vec![4, 3]);
        g.op("dead", Op::MatMul { x, weight: w });
        let y = g.op("y", Op::MatMul { x, weight: w });
        g.mark_output("y", y);
        let program = lower(&g, &CodegenOptions::default()).unwrap().program;
        assert_eq!(program.dispatches.len(), 2);
        for dispatch in &program.dispatches {
            assert!(dispatch
                .bindings
                .iter()
                .all(|b| b.buffer < program.buffers.len()));
        }
    }

    /// Packed weights are one buffer filled from slices of the pieces; the
    /// pieces get no buffer of their own.
    #[test]
    fn packed_weights_are_one_buffer_of_slices() {
        let mut g = Graph::new(1, 2);
        let x = weight(&mut g, "x", vec![2, 3]);
        let pieces: Vec<ValueId> = ["q", "k", "v"]
            .iter()
            .map(|p| weight(&mut g, p, vec![4, 3]))
            .collect();
        let w = g.concat("qkv", pieces, vec![12, 3]);
        let y = g.op("y", Op::MatMul { x, weight: w });
        g.mark_output("y", y);
        let program = lower(&g, &CodegenOptions::default()).unwrap().program;
        let weights: Vec<&BufferRole> = program
            .buffers
            .iter()
            .map(|b| &b.role)
            .filter(|r| matches!(r, BufferRole::Weight(_)))
            .collect();
        let slice = |name: &str, count| WeightSlice {
            name: name.into(),
            first: 0,
            count,
        };
        let packed = vec![slice("q", 12), slice("k", 12), slice("v", 12)];
        assert_eq!(
            weights,
            [
                &BufferRole::Weight(vec![slice("x", 6)]),
                &BufferRole::Weight(packed)
            ]
        );
    }

    /// A packed table split by rows: each part takes the slices it covers,
    /// across piece boundaries.
    #[test]
    fn a_part_of_a_packed_table_spans_pieces() {
        let pieces = [("words", 10), ("types", 4), ("gamma", 2)];
        assert_eq!(
            slices(&pieces, 8, 4),
            vec![
                WeightSlice {
                    name: "words".into(),
                    first: 8,
                    count: 2
                },
                WeightSlice {
                    name: "types".into(),
                    first: 0,
                    count: 2
                },
            ]
        );
        assert_eq!(slices(&pieces, 14, 2)[0].name, "gamma");
    }
}
