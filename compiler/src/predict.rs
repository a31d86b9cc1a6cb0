//! Text in, predictions out, on every engine: the runtime's requests,
//! sequences and predictions (xltc_runtime::prediction), run in batches of
//! like length on the CPU reference, on kernels lowered for each batch, or
//! on a compiled artifact's session.

use std::collections::HashMap;

use xltc_runtime::prediction::{assemble, prediction_outputs, request_sequences};
pub use xltc_runtime::prediction::{Prediction, Request};
use xltc_runtime::{
    rows_of, Encoding, Executor, Gpu, GpuError, ModelInputs, Overflow, RequestError, Session,
    SessionError, TextTokenizer,
};

use crate::codegen::{self, CodegenError, CodegenOptions};
use crate::frontend::Model;
use crate::passes;
use crate::reference::{self, ReferenceError};

/// Where a graph runs.
pub enum Engine {
    /// The CPU reference, on a graph built for each batch.
    Cpu,
    /// Kernels lowered for each batch's exact shape, on a wgpu device.
    Gpu(Gpu),
    /// The programs of a compiled artifact, run by a runtime session.
    Compiled { gpu: Gpu, session: Session },
}

impl Engine {
    /// Sequences a run takes at most.
    fn batch_limit(&self, requested: usize) -> usize {
        match self {
            Engine::Compiled { session, .. } => session.max_batch(),
            _ => requested.max(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Predicts every request, `batch_size` sequences per graph run; `progress`
/// hears (done, total) after each run.
pub fn predict(
    engine: &Engine,
    model: &Model,
    tokenizer: &TextTokenizer,
    requests: &[Request],
    overflow: Overflow,
    batch_size: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Prediction>, PredictError> {
    let sequences = request_sequences(model.output, tokenizer, requests, overflow)?;
    let names = prediction_outputs(model.output);
    let outputs = run_all(engine, model, &sequences, names, batch_size, &mut progress)?;
    Ok(assemble(model.output, requests, outputs))
}

/// Each request's text, on its own (a pair's second sentence is not read),
/// as the mean of the model's last hidden states over its real tokens: the
/// sentence representation that training's alignment term pulls together,
/// for a classifier as for an encoder. `progress` hears (done, total).
pub fn mean_hidden_states(
    engine: &Engine,
    model: &Model,
    tokenizer: &TextTokenizer,
    requests: &[Request],
    overflow: Overflow,
    batch_size: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>, PredictError> {
    let mut sequences = Vec::with_capacity(requests.len());
    for request in requests {
        let encoding = tokenizer
            .encode(&request.text, None, overflow)
            .map_err(|source| RequestError {
                origin: request.origin.clone(),
                source,
            })?;
        sequences.push(encoding);
    }
    let hidden = model.config.hidden;
    let names = ["last_hidden_state"];
    let mut rows = run_all(engine, model, &sequences, &names, batch_size, &mut progress)?;
    Ok(rows
        .remove(0)
        .iter()
        .zip(&sequences)
        .map(|(row, sequence)| {
            let tokens = sequence.ids.len().max(1);
            let mut pooled = vec![0.0f32; hidden];
            for token in row.chunks(hidden).take(tokens) {
                for (p, x) in pooled.iter_mut().zip(token) {
                    *p += x;
                }
            }
            pooled.iter_mut().for_each(|p| *p /= tokens as f32);
            pooled
        })
        .collect())
}

/// Each output of `names`, a row for every sequence in their order
/// (`[name][sequence]`), run in batches of like length (they pad least and
/// fit the smallest buckets).
fn run_all(
    engine: &Engine,
    model: &Model,
    sequences: &[Encoding],
    names: &[&str],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<Vec<f32>>>, PredictError> {
    let mut by_length: Vec<usize> = (0..sequences.len()).collect();
    by_length.sort_by_key(|&i| sequences[i].ids.len());
    let mut outputs = vec![vec![Vec::new(); sequences.len()]; names.len()];
    let mut done = 0;
    for chunk in by_length.chunks(engine.batch_limit(batch_size)) {
        let batch: Vec<Encoding> = chunk.iter().map(|&i| sequences[i].clone()).collect();
        let ran = run_batch(engine, model, &batch, names)?;
        for (output, rows) in outputs.iter_mut().zip(ran) {
            for (&i, row) in chunk.iter().zip(rows) {
                output[i] = row;
            }
        }
        done += chunk.len();
        progress(done, sequences.len());
    }
    Ok(outputs)
}

/// Each output of `names`, a row a sequence, for one padded batch.
fn run_batch(
    engine: &Engine,
    model: &Model,
    sequences: &[Encoding],
    names: &[&str],
) -> Result<Vec<Vec<Vec<f32>>>, PredictError> {
    let (pad_id, positions) = (model.config.pad_token_id, model.position_scheme());
    let (rows, mut data): (usize, HashMap<String, Vec<f32>>) = match engine {
        Engine::Cpu => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let training = Default::default();
            let outputs = reference::run_fast(&graph, &inputs, &training, &|_| None)?;
            let data = outputs.into_iter().map(|(n, t)| (n, t.data)).collect();
            (inputs.batch, data)
        }
        Engine::Gpu(gpu) => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let graph = passes::fuse_with(&graph, passes::Fusions::default());
            let compiled = codegen::lower(&graph, &CodegenOptions::for_adapter(&gpu.adapter))?;
            let program = compiled.program.clone();
            let executor =
                pollster::block_on(Executor::load(gpu, program, |n| compiled.weight(n)))?;
            let outputs = pollster::block_on(executor.run(gpu, &inputs))?;
            let data = outputs.into_iter().map(|(n, o)| (n, o.data)).collect();
            (inputs.batch, data)
        }
        Engine::Compiled { gpu, session } => {
            let run = session.run_outputs(gpu, sequences, names, |n| model.weight(n));
            return Ok(pollster::block_on(run)?);
        }
    };
    Ok(names
        .iter()
        .map(|&name| {
            let data = data.remove(name).expect("the graph marks its outputs");
            rows_of(&data, rows, sequences.len())
        })
        .collect())
}
