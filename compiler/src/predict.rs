//! Text in, predictions out: tokenize, pad a batch, build the graph for its
//! shape, run it on the CPU reference or on the GPU. For an encoder without a head, a
//! sentence pair is two sentences to compare (each embedded on its own, as a
//! bi-encoder is used), not one joint input.

use std::collections::HashMap;

use xltc_runtime::{
    cosine, rows_of, Encoding, Executor, Gpu, GpuError, ModelInputs, Overflow, Session,
    SessionError, TextTokenizer, TokenizerError,
};

use crate::codegen::{self, CodegenError, CodegenOptions};
use crate::frontend::{Model, ModelOutput};
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

/// One input: a sentence, or a sentence pair, and where it came from (for errors).
#[derive(Clone, Debug)]
pub struct Request {
    pub origin: String,
    pub text: String,
    pub pair: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    Classification {
        probabilities: Vec<f32>,
        logits: Vec<f32>,
    },
    Embedding {
        embedding: Vec<f32>,
        pair_embedding: Option<Vec<f32>>,
    },
}

impl Prediction {
    /// The index of the most probable label, for a classification; the
    /// first of equals, as evaluation and training count it.
    pub fn label(&self) -> Option<usize> {
        let Prediction::Classification { probabilities, .. } = self else {
            return None;
        };
        Some(crate::evaluate::argmax(probabilities))
    }

    /// Cosine similarity of a sentence and its pair, for embeddings of a pair.
    pub fn cosine(&self) -> Option<f32> {
        match self {
            Prediction::Embedding {
                embedding,
                pair_embedding: Some(other),
            } => Some(cosine(embedding, other)),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("{origin}")]
    Tokenize {
        origin: String,
        #[source]
        source: TokenizerError,
    },
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
    let sequences = tokenize_all(model, tokenizer, requests, overflow)?;
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
            .map_err(|source| PredictError::Tokenize {
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

/// The graph outputs a prediction reads: a classifier's logits and the
/// probabilities of the graph's own softmax (the numbers the browser shows),
/// an encoder's sentence embeddings.
fn prediction_outputs(output: ModelOutput) -> &'static [&'static str] {
    match output {
        ModelOutput::Classification => &["logits", "probabilities"],
        ModelOutput::SentenceEmbedding { .. } => &["sentence_embedding"],
    }
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

/// The sequences the graph sees: one per request for a classifier; for an
/// embedding model, the text and then (if any) the pair as separate sequences.
pub(crate) fn tokenize_all(
    model: &Model,
    tokenizer: &TextTokenizer,
    requests: &[Request],
    overflow: Overflow,
) -> Result<Vec<Encoding>, PredictError> {
    let mut sequences = Vec::new();
    for request in requests {
        let encode = |text: &str, pair: Option<&str>| {
            tokenizer
                .encode(text, pair, overflow)
                .map_err(|source| PredictError::Tokenize {
                    origin: request.origin.clone(),
                    source,
                })
        };
        match (model.output, &request.pair) {
            (ModelOutput::Classification, pair) => {
                sequences.push(encode(&request.text, pair.as_deref())?)
            }
            (ModelOutput::SentenceEmbedding { .. }, pair) => {
                sequences.push(encode(&request.text, None)?);
                if let Some(pair) = pair {
                    sequences.push(encode(pair, None)?);
                }
            }
        }
    }
    Ok(sequences)
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

/// The predictions from [`prediction_outputs`]' rows.
fn assemble(
    output: ModelOutput,
    requests: &[Request],
    rows: Vec<Vec<Vec<f32>>>,
) -> Vec<Prediction> {
    let mut outputs = rows.into_iter().map(Vec::into_iter);
    let mut first = outputs.next().expect("a prediction reads an output");
    let mut second = outputs.next();
    let mut next = || first.next().expect("one row per sequence");
    requests
        .iter()
        .map(|request| match output {
            ModelOutput::Classification => Prediction::Classification {
                logits: next(),
                probabilities: second
                    .as_mut()
                    .and_then(Iterator::next)
                    .expect("one row of probabilities per sequence"),
            },
            ModelOutput::SentenceEmbedding { .. } => Prediction::Embedding {
                embedding: next(),
                pair_embedding: request.pair.as_ref().map(|_| next()),
            },
        })
        .collect()
}
