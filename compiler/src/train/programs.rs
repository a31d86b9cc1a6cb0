//! Training's GPU programs, by kind: the train step of a (batch rows,
//! sequence) bucket, the forward of dev evaluation, and the
//! optimizer step. The trainer compiles a bucket's programs with these
//! functions when it first meets the bucket; `xltc compile --training`
//! compiles every bucket with them into the artifact, so `xltc inspect`
//! shows what training will hold.

use xltc_runtime::artifact::{Bucket, Training};
use xltc_runtime::Program;

use super::TrainError;
use crate::codegen::{lower, lower_optimizer, lower_train_step, CodegenOptions};
use crate::frontend::Model;
use crate::ir::Source;
use crate::ir::{AlignmentLoss, Graph};
use crate::passes::{autodiff, fuse_with, perturbation_gradient, Fusions};
use crate::reference::AdamW;

/// Sequence lengths of training's programs are rounded up to a multiple of
/// this: a few programs serve every batch.
pub const SEQUENCE_BUCKET: usize = 16;

/// Rows of a dev-evaluation batch: this many training batches.
pub const EVALUATION_BATCHES: usize = 4;

/// The sequence length of the bucket a batch whose longest sequence has
/// `longest` tokens runs in, for a model of `max_tokens` positions.
pub fn sequence_bucket(longest: usize, max_tokens: usize) -> usize {
    longest
        .next_multiple_of(SEQUENCE_BUCKET)
        .min(max_tokens)
        .max(longest)
}

/// Every sequence bucket of sequences up to `max_seq` tokens.
pub fn sequence_buckets(max_seq: usize, max_tokens: usize) -> Vec<usize> {
    let mut buckets: Vec<usize> = (1..=max_seq)
        .map(|l| sequence_bucket(l, max_tokens))
        .collect();
    buckets.dedup();
    buckets
}

/// A trainable parameter: checkpoint name, shape, data.
pub type Parameter = (String, Vec<usize>, Vec<f32>);

/// A parameter's checkpoint name and shape: what a program is compiled for.
pub type ParameterShape = (String, Vec<usize>);

/// Every trainable parameter of `model`'s classifier, in graph order (the
/// order the optimizer adds their squares).
pub fn parameters(model: &Model) -> Result<Vec<Parameter>, TrainError> {
    let graph = model.training_graph(1, 2, false)?;
    Ok(graph
        .values()
        .filter_map(|(_, v)| match &v.source {
            Source::Weight(data) => Some((v.name.clone(), v.shape.clone(), data.to_vec())),
            _ => None,
        })
        .collect())
}

/// The names and shapes of [`parameters`], without copying their data.
pub fn parameter_shapes(model: &Model) -> Result<Vec<ParameterShape>, TrainError> {
    let graph = model.training_graph(1, 2, false)?;
    Ok(graph
        .values()
        .filter(|(_, v)| matches!(v.source, Source::Weight(_)))
        .map(|(_, v)| (v.name.clone(), v.shape.clone()))
        .collect())
}

/// The names and shapes of `params`.
pub fn shapes(params: &[Parameter]) -> Vec<ParameterShape> {
    params
        .iter()
        .map(|(name, shape, _)| (name.clone(), shape.clone()))
        .collect()
}

/// `graph` with the fusions training's programs take
/// ([`Fusions::TRAINING`]): the GPU runs fused kernels where a fusion keeps
/// every value the backward reads and every parameter a tensor of its own.
fn fused(graph: Graph) -> Graph {
    fuse_with(&graph, Fusions::TRAINING)
}

fn codegen_error(error: crate::codegen::CodegenError) -> TrainError {
    TrainError::Gpu(error.to_string())
}

/// The train step of bucket `batch` x `seq`: forward (with the model's
/// dropout when `dropout`), loss and backward, each parameter's gradient
/// added into its gradient buffer.
pub fn train_step(
    model: &Model,
    batch: usize,
    seq: usize,
    dropout: bool,
    options: &CodegenOptions,
) -> Result<Bucket, TrainError> {
    let graph = fused(autodiff(&model.training_graph(batch, seq, dropout)?)?);
    let program = lower_train_step(&graph, options).map_err(codegen_error)?;
    Ok(Bucket {
        program: program.program,
        flops: graph.flops(),
    })
}

/// The alignment term's train step for `pairs` parallel lines of up to
/// `seq` tokens (2 x `pairs` rows): forward, alignment loss and backward,
/// each parameter's gradient added into its gradient buffer.
pub fn alignment_step(
    model: &Model,
    pairs: usize,
    seq: usize,
    dropout: bool,
    loss: AlignmentLoss,
    options: &CodegenOptions,
) -> Result<Bucket, TrainError> {
    let graph = fused(autodiff(&model.alignment_graph(pairs, seq, dropout, loss))?);
    let program = lower_train_step(&graph, options).map_err(codegen_error)?;
    Ok(Bucket {
        program: program.program,
        flops: graph.flops(),
    })
}

/// The ascent step of adversarial training for bucket `batch` x `seq`:
/// forward, loss, and the backward to the word-embedding perturbation
/// only (outputs `loss` and `grad.word_embeddings`).
pub fn ascent(
    model: &Model,
    batch: usize,
    seq: usize,
    dropout: bool,
    options: &CodegenOptions,
) -> Result<Bucket, TrainError> {
    let graph = fused(perturbation_gradient(
        &model.training_graph(batch, seq, dropout)?,
    )?);
    let program = lower(&graph, options).map_err(codegen_error)?;
    Ok(Bucket {
        program: program.program,
        flops: graph.flops(),
    })
}

/// The ascent step on the alignment term's perturbation for `pairs`
/// parallel lines of up to `seq` tokens: forward, alignment loss and the
/// backward to the word-embedding perturbation only.
pub fn alignment_ascent(
    model: &Model,
    pairs: usize,
    seq: usize,
    dropout: bool,
    loss: AlignmentLoss,
    options: &CodegenOptions,
) -> Result<Bucket, TrainError> {
    let graph = fused(perturbation_gradient(
        &model.alignment_graph(pairs, seq, dropout, loss),
    )?);
    let program = lower(&graph, options).map_err(codegen_error)?;
    Ok(Bucket {
        program: program.program,
        flops: graph.flops(),
    })
}

/// The forward of bucket `batch` x `seq` (logits), fused as the train step
/// is, whose weights are the parameters' buffers one a tensor.
pub fn forward(
    model: &Model,
    batch: usize,
    seq: usize,
    options: &CodegenOptions,
) -> Result<Bucket, TrainError> {
    let graph = fused(model.graph(batch, seq));
    let program = lower(&graph, options).map_err(codegen_error)?;
    Ok(Bucket {
        program: program.program,
        flops: graph.flops(),
    })
}

/// The optimizer step over `parameters`.
pub fn optimizer(
    parameters: &[ParameterShape],
    adam: &AdamW,
    options: &CodegenOptions,
) -> Result<Program, TrainError> {
    lower_optimizer(parameters, adam, options).map_err(codegen_error)
}

/// Every program training `model` in batches of `batch` sequences of up to
/// `max_seq` tokens takes, compiled with `options`; `progress` hears
/// (done, total) after each.
pub fn compile_training(
    model: &Model,
    batch: usize,
    max_seq: usize,
    dropout: bool,
    adam: &AdamW,
    options: &CodegenOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Training, TrainError> {
    let parameters = parameter_shapes(model)?;
    let seqs = sequence_buckets(max_seq, model.max_tokens());
    let total = 2 * seqs.len() + 1;
    let optimizer = optimizer(&parameters, adam, options)?;
    progress(1, total);
    let (mut steps, mut forwards) = (Vec::new(), Vec::new());
    for (index, &seq) in seqs.iter().enumerate() {
        steps.push(train_step(model, batch, seq, dropout, options)?);
        forwards.push(forward(model, batch * EVALUATION_BATCHES, seq, options)?);
        progress(2 * index + 3, total);
    }
    Ok(Training {
        steps,
        forwards,
        optimizer,
        parameters,
        dropout,
        weight_decay: adam.weight_decay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_buckets_round_up_to_sixteen_within_the_positions() {
        assert_eq!(sequence_bucket(1, 512), 16);
        assert_eq!(sequence_bucket(16, 512), 16);
        assert_eq!(sequence_bucket(17, 512), 32);
        assert_eq!(sequence_bucket(100, 100), 100);
        assert_eq!(sequence_bucket(97, 100), 100);
        assert_eq!(sequence_buckets(40, 512), vec![16, 32, 48]);
        assert_eq!(sequence_buckets(40, 40), vec![16, 32, 40]);
        assert_eq!(sequence_buckets(5, 8), vec![8]);
    }
}
