//! Text in, predictions out: tokenize, pad a batch, build the graph for its
//! shape, run it on the CPU reference or on the GPU. For an encoder without a head, a
//! sentence pair is two sentences to compare (each embedded on its own, as a
//! bi-encoder is used), not one joint input.

use xltc_runtime::{
    cosine, Encoding, Executor, Gpu, GpuError, ModelInputs, Overflow, Session, SessionError,
    TextTokenizer, TokenizerError,
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
    let name = model.prediction_output();
    let outputs = run_all(engine, model, &sequences, name, batch_size, &mut progress)?;
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
    let rows = run_all(engine, model, &sequences, "last_hidden_state", batch_size, &mut progress)?;
    Ok(rows
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

/// The output `name`'s row for every sequence, in their order, run in
/// batches of like length (they pad least and fit the smallest buckets).
fn run_all(
    engine: &Engine,
    model: &Model,
    sequences: &[Encoding],
    name: &str,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>, PredictError> {
    let mut by_length: Vec<usize> = (0..sequences.len()).collect();
    by_length.sort_by_key(|&i| sequences[i].ids.len());
    let mut outputs = vec![Vec::new(); sequences.len()];
    let mut done = 0;
    for chunk in by_length.chunks(engine.batch_limit(batch_size)) {
        let batch: Vec<Encoding> = chunk.iter().map(|&i| sequences[i].clone()).collect();
        for (&i, row) in chunk.iter().zip(run_batch(engine, model, &batch, name)?) {
            outputs[i] = row;
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

/// The model's per-sequence output rows for one padded batch.
fn run_batch(
    engine: &Engine,
    model: &Model,
    sequences: &[Encoding],
    name: &str,
) -> Result<Vec<Vec<f32>>, PredictError> {
    let (pad_id, positions) = (model.config.pad_token_id, model.position_scheme());
    let (rows, data) = match engine {
        Engine::Cpu => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let training = Default::default();
            let data = reference::run_fast(&graph, &inputs, &training, &|_| None)?
                .remove(name)
                .map(|t| t.data);
            (inputs.batch, data)
        }
        Engine::Gpu(gpu) => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let graph = passes::fuse_with(&graph, passes::Fusions::default());
            let compiled = codegen::lower(&graph, &CodegenOptions::default())?;
            let program = compiled.program.clone();
            let executor =
                pollster::block_on(Executor::load(gpu, program, |n| compiled.weight(n)))?;
            let data = pollster::block_on(executor.run(gpu, &inputs))?
                .remove(name)
                .map(|o| o.data);
            (inputs.batch, data)
        }
        Engine::Compiled { gpu, session } => {
            let run = session.run(gpu, sequences, name, |n| model.weight(n));
            return Ok(pollster::block_on(run)?);
        }
    };
    let data = data.expect("the graph marks its output");
    let width = data.len() / rows.max(1);
    Ok(data
        .chunks(width.max(1))
        .take(sequences.len())
        .map(<[f32]>::to_vec)
        .collect())
}

fn assemble(output: ModelOutput, requests: &[Request], rows: Vec<Vec<f32>>) -> Vec<Prediction> {
    let mut rows = rows.into_iter();
    let mut next = || rows.next().expect("one row per sequence");
    requests
        .iter()
        .map(|request| match output {
            ModelOutput::Classification => {
                let logits = next();
                let probabilities = reference::softmax_forward(&logits, logits.len());
                Prediction::Classification {
                    probabilities,
                    logits,
                }
            }
            ModelOutput::SentenceEmbedding { .. } => Prediction::Embedding {
                embedding: next(),
                pair_embedding: request.pair.as_ref().map(|_| next()),
            },
        })
        .collect()
}
