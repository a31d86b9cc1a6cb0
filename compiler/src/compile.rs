//! Ahead-of-time compilation: one program for each (batch, sequence) bucket,
//! packed with the model's config, tokenizer and weights into an artifact.

use xltc_runtime::artifact::{Artifact, Bucket, Manifest};

use crate::codegen::{lower, CodegenError, CodegenOptions};
use crate::frontend::Model;
use crate::ir::Graph;
use crate::passes::{fuse_with, Fusions};

#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The longest sequence, special tokens included; the largest sequence bucket.
    pub max_seq: usize,
    /// The most sequences a run; the largest batch bucket.
    pub max_batch: usize,
    /// The fusion passes to apply ([`Fusions::NONE`]: one kernel an IR op).
    pub fusions: Fusions,
    pub codegen: CodegenOptions,
}

/// Sequence buckets: powers of two from 16 up to `max_seq`, and `max_seq` itself.
pub fn seq_buckets(max_seq: usize) -> Vec<usize> {
    let mut buckets: Vec<usize> = (4..)
        .map(|p| 1usize << p)
        .take_while(|&s| s < max_seq)
        .collect();
    buckets.push(max_seq);
    buckets
}

/// Batch buckets: powers of two from a single sequence (interactive use) up
/// to `max_batch`, and `max_batch` itself, so that a short last batch pads to
/// at most twice its size. Programs are small; the weights are stored once.
pub fn batch_buckets(max_batch: usize) -> Vec<usize> {
    let mut buckets: Vec<usize> = (0..)
        .map(|p| 1usize << p)
        .take_while(|&b| b < max_batch)
        .collect();
    buckets.push(max_batch.max(1));
    buckets.dedup();
    buckets
}

/// The graph of every bucket, fused as the options say.
pub fn bucket_graphs(model: &Model, options: &CompileOptions) -> Vec<Graph> {
    let shapes = batch_buckets(options.max_batch).into_iter().flat_map(|b| {
        seq_buckets(options.max_seq)
            .into_iter()
            .map(move |s| (b, s))
    });
    shapes
        .map(|(batch, seq)| fuse_with(&model.graph(batch, seq), options.fusions))
        .collect()
}

/// Compiles every bucket; `progress` hears (done, total) after each.
pub fn compile(
    model: &Model,
    options: &CompileOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Artifact, CodegenError> {
    let graphs = bucket_graphs(model, options);
    let mut buckets = Vec::with_capacity(graphs.len());
    for (done, graph) in graphs.iter().enumerate() {
        let program = lower(graph, &options.codegen)?.program;
        buckets.push(Bucket {
            program,
            flops: graph.flops(),
        });
        progress(done + 1, graphs.len());
    }
    Ok(Artifact {
        manifest: Manifest {
            model: model.info(),
            tokenizer_json: model.tokenizer_json.clone(),
            buckets,
            training: None,
            tuning: None,
        },
        weights: model.weights_safetensors(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_up_to_the_maximum() {
        assert_eq!(seq_buckets(128), vec![16, 32, 64, 128]);
        assert_eq!(seq_buckets(100), vec![16, 32, 64, 100]);
        assert_eq!(seq_buckets(8), vec![8]);
        assert_eq!(batch_buckets(32), vec![1, 2, 4, 8, 16, 32]);
        assert_eq!(batch_buckets(12), vec![1, 2, 4, 8, 12]);
        assert_eq!(batch_buckets(1), vec![1]);
    }
}
