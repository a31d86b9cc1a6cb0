//! The two programs of a training step on the GPU. The train step is a
//! training graph (forward, loss, backward) lowered as any graph, except
//! that each parameter's gradient, instead of being read back, is added
//! into the parameter's gradient buffer by the dispatch right after its
//! kernel: micro-batches accumulate there, and the gradient's activation
//! buffer is free for the next op. The optimizer step reads those sums:
//! the global norm (a sum of squares a parameter, then one thread adding
//! them in order), the clipping factor, and AdamW on every parameter in
//! place, zeroing its gradient. Weights, gradients and moments are buffers
//! the two programs share by role ([`BufferRole`]); what changes from step
//! to step (learning rate, bias corrections, the gradient's scale) is the
//! optimizer's one input, [`OPTIMIZER_INPUT`].

use std::collections::BTreeMap;

use xltc_runtime::program::{Binding, BufferRole, Dispatch, OutputSpec};
use xltc_runtime::Program;

use super::kernels::{finish, per_element, KernelInstance};
use super::templates::Template;
use super::{
    add_kernel, lower_with, parameter_parts, push_buffer, CodegenError, CodegenOptions, Compiled,
};
use crate::ir::{Graph, Source};
use crate::passes::gradient_name;
use crate::reference::{decays, AdamW};

/// The optimizer program's input, five f32: the learning rate, the bias
/// corrections 1 - beta1^t and sqrt(1 - beta2^t) of step t (from 1), the
/// scale of the summed gradients (1 / accumulation steps) and the norm
/// they are clipped to.
pub const OPTIMIZER_INPUT: &str = "optimizer";

/// Threads of the workgroup that sums one parameter's squares.
const SQUARE_SUM_WORKGROUP: u32 = 256;

/// A training graph's program, each parameter gradient (the outputs the
/// autodiff pass names `grad.<parameter>`) added into its gradient buffer
/// instead of read back; the loss and any other output (the word
/// embeddings' gradient) stay outputs.
pub fn lower_train_step(graph: &Graph, options: &CodegenOptions) -> Result<Compiled, CodegenError> {
    let parameters: BTreeMap<String, String> = graph
        .values()
        .filter(|(_, v)| matches!(v.source, Source::Weight(_)))
        .map(|(_, v)| (gradient_name(&v.name), v.name.clone()))
        .collect();
    let mut accumulate = BTreeMap::new();
    for (name, id) in graph.outputs() {
        if let Some(parameter) = parameters.get(name) {
            accumulate.insert(*id, parameter.clone());
        }
    }
    let mut step = graph.clone();
    step.retain_outputs(|name| !parameters.contains_key(name));
    lower_with(&step, options, &accumulate)
}

/// The optimizer step over `parameters` (checkpoint name and shape, in
/// the order their squares are added): global-norm clipping and AdamW with
/// `adam`'s settings, weight decay only where [`decays`] says. A table past
/// one binding is updated a part at a time, its parts those of its weight
/// and gradient buffers in the other programs. Its output `gradient_norm`
/// [1] is the norm before clipping.
pub fn lower_optimizer(
    parameters: &[(String, Vec<usize>)],
    adam: &AdamW,
    options: &CodegenOptions,
) -> Result<Program, CodegenError> {
    // (label, slice) of every part, in order.
    let mut parts = Vec::new();
    for (name, shape) in parameters {
        for part in parameter_parts(name, shape, options.max_binding_bytes)? {
            parts.push((part.label, part.slice));
        }
    }
    let mut program = Program::default();
    let scalars = push_buffer(
        &mut program,
        OPTIMIZER_INPUT.to_owned(),
        5 * 4,
        BufferRole::Input(vec![OPTIMIZER_INPUT.to_owned()]),
    );
    let partials = push_buffer(
        &mut program,
        "squares of each gradient".to_owned(),
        parts.len().max(1) as u64 * 4,
        BufferRole::Activation,
    );
    let state = push_buffer(
        &mut program,
        "norm and clipping factor".to_owned(),
        2 * 4,
        BufferRole::Activation,
    );
    let mut kernel_ids = BTreeMap::new();
    let mut buffers = Vec::new();
    for (label, slice) in &parts {
        let bytes = slice.count as u64 * 4;
        let moment = |order| BufferRole::Moment {
            of: slice.clone(),
            order,
        };
        let roles = [
            (label.clone(), BufferRole::Weight(vec![slice.clone()])),
            (format!("grad {label}"), BufferRole::Gradient(slice.clone())),
            (format!("m {label}"), moment(1)),
            (format!("v {label}"), moment(2)),
        ];
        let ids = roles.map(|(label, role)| push_buffer(&mut program, label, bytes, role));
        buffers.push(ids);
    }
    let bind = |buffer, read_only| Binding { buffer, read_only };
    let mut dispatch = |program: &mut Program, instance: KernelInstance, bindings, flops| {
        let kernel = add_kernel(program, &mut kernel_ids, &instance)?;
        program.dispatches.push(Dispatch {
            kernel,
            bindings,
            workgroups: instance.workgroups,
            flops,
        });
        Ok::<(), CodegenError>(())
    };
    for (index, ((_, slice), [_, gradient, _, _])) in parts.iter().zip(&buffers).enumerate() {
        let c = vec![
            ("COUNT", slice.count.to_string()),
            ("INDEX", index.to_string()),
            ("WORKGROUP", SQUARE_SUM_WORKGROUP.to_string()),
        ];
        let instance = finish(Template::SquareSum, c, Vec::new(), [1, 1, 1]);
        let flops = 2 * slice.count as u64;
        dispatch(
            &mut program,
            instance,
            vec![bind(*gradient, true), bind(partials, false)],
            flops,
        )?;
    }
    let c = vec![("PARAMETERS", parts.len().to_string())];
    let clip = finish(Template::Clip, c, Vec::new(), [1, 1, 1]);
    let bindings = vec![
        bind(partials, true),
        bind(scalars, true),
        bind(state, false),
    ];
    dispatch(&mut program, clip, bindings, parts.len() as u64)?;
    for ((_, slice), [param, gradient, m, v]) in parts.iter().zip(&buffers) {
        let (workgroups, grid) = per_element(slice.count);
        let c = vec![
            ("COUNT", slice.count.to_string()),
            ("DECAY", u32::from(decays(&slice.name)).to_string()),
            ("BETA1", format!("{:e}", adam.beta1 as f32)),
            ("BETA2", format!("{:e}", adam.beta2 as f32)),
            ("EPS", format!("{:e}", adam.eps as f32)),
            ("WEIGHT_DECAY", format!("{:e}", adam.weight_decay as f32)),
        ];
        let instance = finish(Template::AdamW, [c, grid].concat(), Vec::new(), workgroups);
        let bindings = vec![
            bind(scalars, true),
            bind(state, true),
            bind(*param, false),
            bind(*gradient, false),
            bind(*m, false),
            bind(*v, false),
        ];
        // adamw.wgsl's arithmetic an element: 15, and 2 for the decay.
        let flops = slice.count as u64 * (15 + 2 * u64::from(decays(&slice.name)));
        dispatch(&mut program, instance, bindings, flops)?;
    }
    program.outputs.push(OutputSpec {
        name: "gradient_norm".to_owned(),
        buffer: state,
        shape: vec![1],
    });
    Ok(program)
}

/// The optimizer's input for step `step` (from 1) at learning rate `lr`,
/// each value computed in f64 and rounded once.
pub fn optimizer_input(
    adam: &AdamW,
    step: u32,
    lr: f64,
    gradient_scale: f64,
    max_norm: f64,
) -> [f32; 5] {
    [
        lr,
        1.0 - adam.beta1.powi(step as i32),
        (1.0 - adam.beta2.powi(step as i32)).sqrt(),
        gradient_scale,
        max_norm,
    ]
    .map(|v| v as f32)
}
