//! Codegen: a graph becomes a [`Program`] of specialised WGSL kernels, one
//! dispatch an op, each output in a buffer of its own. Identical kernel
//! instances share one module; every module is validated with naga.

mod kernels;
mod memory;
mod templates;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use xltc_runtime::program::{
    Binding, BufferRole, BufferSpec, Dispatch, IdBound, KernelSpec, OutputSpec,
};
use xltc_runtime::Program;

use crate::ir::{Graph, Input, Source};

pub use templates::Template;
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
}

/// WebGPU's default maxStorageBufferBindingSize: what every browser allows.
pub const WEBGPU_MAX_BINDING_BYTES: u64 = 128 << 20;

#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// The largest storage binding a kernel may use.
    pub max_binding_bytes: u64,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        Self {
            max_binding_bytes: WEBGPU_MAX_BINDING_BYTES,
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

pub fn input_name(input: Input) -> &'static str {
    match input {
        Input::InputIds => "input_ids",
        Input::TokenTypeIds => "token_type_ids",
        Input::PositionIds => "position_ids",
        Input::AttentionMask => "attention_mask",
    }
}

pub fn lower(graph: &Graph, options: &CodegenOptions) -> Result<Compiled, CodegenError> {
    let mut program = Program {
        batch: graph.batch,
        seq: graph.seq,
        ..Default::default()
    };
    let mut weights = BTreeMap::new();
    let value_buffers = allocate_buffers(graph, options, &mut program, &mut weights)?;
    let mut kernel_ids: BTreeMap<String, usize> = BTreeMap::new();
    for (id, value) in graph.values() {
        let Source::Op(op) = &value.source else {
            continue;
        };
        let instance = kernels::instance(graph, id, op, options.max_binding_bytes);
        let wgsl = instance.template.specialise(&instance.constants);
        let next = program.kernels.len();
        let kernel = *kernel_ids.entry(wgsl.clone()).or_insert(next);
        if kernel == next {
            let name = kernel_name(&instance);
            validate_wgsl(&wgsl).map_err(|message| CodegenError::InvalidWgsl {
                kernel: name.clone(),
                message,
            })?;
            program.kernels.push(KernelSpec { name, wgsl });
        }
        let mut bindings = Vec::new();
        for (position, read) in instance.reads.iter().enumerate() {
            let parts = &value_buffers[read.index()];
            let slots = if instance.template == Template::Gather && position == 0 {
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
        bindings.push(Binding {
            buffer: value_buffers[id.index()][0],
            read_only: false,
        });
        program.dispatches.push(Dispatch {
            kernel,
            bindings,
            workgroups: instance.workgroups,
        });
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

/// Buffers for every value: one per input, one per weight (or one per part of
/// a split table), and the planned activation buffers. Returns each value's
/// buffers.
fn allocate_buffers(
    graph: &Graph,
    options: &CodegenOptions,
    program: &mut Program,
    weights: &mut BTreeMap<String, Arc<[f32]>>,
) -> Result<Vec<Vec<usize>>, CodegenError> {
    let limit = options.max_binding_bytes;
    let plan = memory::plan_activations(graph);
    let first_slot = program.buffers.len();
    for (slot, &bytes) in plan.slot_bytes.iter().enumerate() {
        program.buffers.push(BufferSpec {
            name: format!("activations #{slot}"),
            bytes,
            role: BufferRole::Activation,
        });
    }
    let gather_tables = gather_tables(graph);
    let mut value_buffers = Vec::new();
    for (id, value) in graph.values() {
        let bytes = value.elements() as u64 * 4;
        let buffers = match &value.source {
            Source::Op(_) => {
                if bytes > limit {
                    return Err(CodegenError::TooLarge {
                        value: value.name.clone(),
                        bytes,
                        limit,
                    });
                }
                vec![first_slot + plan.slot_of[id.index()].expect("every op value is planned")]
            }
            Source::Input(input) => {
                let role = BufferRole::Input(input_name(*input).to_owned());
                vec![push_buffer(program, value.name.clone(), bytes, role)]
            }
            Source::Weight(data) => {
                weights.insert(value.name.clone(), data.clone());
                if bytes > limit && !gather_tables.contains(&id) {
                    return Err(CodegenError::TooLarge {
                        value: value.name.clone(),
                        bytes,
                        limit,
                    });
                }
                weight_parts(program, &value.name, &value.shape, limit)?
            }
        };
        value_buffers.push(buffers);
    }
    Ok(value_buffers)
}

fn push_buffer(program: &mut Program, name: String, bytes: u64, role: BufferRole) -> usize {
    program.buffers.push(BufferSpec { name, bytes, role });
    program.buffers.len() - 1
}

/// A weight's buffers: the whole weight, or row parts of a table that does
/// not fit one binding.
fn weight_parts(
    program: &mut Program,
    name: &str,
    shape: &[usize],
    limit: u64,
) -> Result<Vec<usize>, CodegenError> {
    let (rows, width) = match *shape {
        [rows, width] => (rows, width),
        _ => (1, shape.iter().product()),
    };
    let (rows_per_part, parts) = memory::table_parts(rows, width, limit);
    if parts > memory::TABLE_PARTS {
        let bytes = (rows * width * 4) as u64;
        return Err(CodegenError::TooLarge {
            value: name.to_owned(),
            bytes,
            limit,
        });
    }
    let buffers = (0..parts).map(|part| {
        let first_row = part * rows_per_part;
        let part_rows = rows_per_part.min(rows - first_row);
        let label = if parts == 1 {
            name.to_owned()
        } else {
            format!("{name}[rows {first_row}..{}]", first_row + part_rows)
        };
        let role = BufferRole::Weight {
            name: name.to_owned(),
            first: first_row * width,
            count: part_rows * width,
        };
        push_buffer(program, label, (part_rows * width * 4) as u64, role)
    });
    Ok(buffers.collect())
}

/// Every id input a gather reads, with the rows of its table.
fn id_bounds(graph: &Graph) -> Vec<IdBound> {
    let mut bounds = Vec::new();
    for (_, value) in graph.values() {
        let Source::Op(crate::ir::Op::Gather { table, ids }) = &value.source else {
            continue;
        };
        if let Source::Input(input) = graph.value(*ids).source {
            let table = graph.value(*table);
            bounds.push(IdBound {
                input: input_name(input).to_owned(),
                table: table.name.clone(),
                rows: table.shape[0] as u32,
            });
        }
    }
    bounds
}

/// Weights read only as the table of a gather: the ones that may be split.
fn gather_tables(graph: &Graph) -> Vec<crate::ir::ValueId> {
    let mut tables = Vec::new();
    let mut other_reads = Vec::new();
    for (_, value) in graph.values() {
        if let Source::Op(op) = &value.source {
            if let crate::ir::Op::Gather { table, ids } = *op {
                tables.push(table);
                other_reads.push(ids);
            } else {
                other_reads.extend(op.operands());
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
