//! Codegen: a graph becomes a [`Program`] of specialised WGSL kernels, one
//! dispatch an op, each output in a buffer of its own. Identical kernel
//! instances share one module; every module is validated with naga.

mod kernels;
mod templates;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use xltc_runtime::program::{Binding, BufferRole, BufferSpec, Dispatch, KernelSpec, OutputSpec};
use xltc_runtime::Program;

use crate::ir::{Graph, Input, Source};

pub use templates::Template;
pub use validate::validate_wgsl;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error("kernel {kernel}: naga rejects the emitted WGSL (a compiler bug):\n{message}")]
    InvalidWgsl { kernel: String, message: String },
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

pub fn lower(graph: &Graph) -> Result<Compiled, CodegenError> {
    let mut program = Program {
        batch: graph.batch,
        seq: graph.seq,
        ..Default::default()
    };
    let mut weights = BTreeMap::new();
    let mut kernel_ids: BTreeMap<String, usize> = BTreeMap::new();
    for (id, value) in graph.values() {
        let role = match &value.source {
            Source::Input(input) => BufferRole::Input(input_name(*input).to_owned()),
            Source::Weight(data) => {
                weights.insert(value.name.clone(), data.clone());
                BufferRole::Weight(value.name.clone())
            }
            Source::Op(_) => BufferRole::Activation,
        };
        program.buffers.push(BufferSpec {
            name: value.name.clone(),
            bytes: value.elements() as u64 * 4,
            role,
        });
        let Source::Op(op) = &value.source else {
            continue;
        };
        let instance = kernels::instance(graph, id, op);
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
        let reads = instance.reads.iter().map(|r| Binding {
            buffer: r.index(),
            read_only: true,
        });
        let write = Binding {
            buffer: id.index(),
            read_only: false,
        };
        program.dispatches.push(Dispatch {
            kernel,
            bindings: reads.chain([write]).collect(),
            workgroups: instance.workgroups,
        });
    }
    for (name, id) in graph.outputs() {
        program.outputs.push(OutputSpec {
            name: name.clone(),
            buffer: id.index(),
            shape: graph.value(*id).shape.clone(),
        });
    }
    Ok(Compiled { program, weights })
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
