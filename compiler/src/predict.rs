//! Text in, predictions out: tokenize, pad a batch, build the graph for its
//! shape, run it on the CPU reference or on the GPU. For an encoder without a head, a
//! sentence pair is two sentences to compare (each embedded on its own, as a
//! bi-encoder is used), not one joint input.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use xltc_runtime::artifact::Bucket;
use xltc_runtime::{
    Encoding, Executor, Gpu, GpuError, ModelInputs, Overflow, TextTokenizer, TokenizerError,
};

use crate::codegen::{self, CodegenError, CodegenOptions};
use crate::frontend::{Model, ModelOutput};
use crate::reference::{self, ReferenceError};

/// Where a graph runs.
pub enum Engine {
    /// The CPU reference, on a graph built for each batch.
    Cpu,
    /// Kernels lowered for each batch's exact shape, on a wgpu device.
    Gpu(Gpu),
    /// The programs of a compiled artifact, each batch padded to the smallest
    /// bucket that holds it; executors are made once a bucket, on first use.
    Compiled {
        gpu: Gpu,
        buckets: Vec<Bucket>,
        executors: RefCell<HashMap<usize, Executor>>,
    },
}

impl Engine {
    pub fn compiled(gpu: Gpu, buckets: Vec<Bucket>) -> Self {
        Engine::Compiled {
            gpu,
            buckets,
            executors: RefCell::new(HashMap::new()),
        }
    }

    /// Sequences a run takes at most.
    fn batch_limit(&self, requested: usize) -> usize {
        match self {
            Engine::Compiled { buckets, .. } => {
                buckets.iter().map(|b| b.program.batch).max().unwrap_or(1)
            }
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
    /// The index of the most probable label, for a classification.
    pub fn label(&self) -> Option<usize> {
        let Prediction::Classification { probabilities, .. } = self else {
            return None;
        };
        (0..probabilities.len()).max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
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

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(&p, &q)| p as f64 * q as f64)
            .sum::<f64>()
    };
    (dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()).max(1e-12)) as f32
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
    #[error(
        "a batch of {batch} sequences of up to {seq} tokens fits no compiled bucket; \
         recompile with a larger --max-seq or --batch"
    )]
    NoBucket { batch: usize, seq: usize },
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
    let mut outputs = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(engine.batch_limit(batch_size)) {
        outputs.extend(run_batch(engine, model, chunk)?);
        progress(outputs.len(), sequences.len());
    }
    Ok(assemble(model.output, requests, outputs))
}

/// The sequences the graph sees: one per request for a classifier; for an
/// embedding model, the text and then (if any) the pair as separate sequences.
fn tokenize_all(
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
) -> Result<Vec<Vec<f32>>, PredictError> {
    let (pad_id, positions) = (model.config.pad_token_id, model.position_scheme());
    let name = model.prediction_output();
    let (rows, data) = match engine {
        Engine::Cpu => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let data = reference::run(&graph, &inputs)?
                .remove(name)
                .map(|t| t.data);
            (inputs.batch, data)
        }
        Engine::Gpu(gpu) => {
            let inputs = ModelInputs::pad(sequences, 0, pad_id, positions);
            let graph = model.graph(inputs.batch, inputs.seq);
            let compiled = codegen::lower(&graph, &CodegenOptions::default())?;
            let program = compiled.program.clone();
            let executor =
                pollster::block_on(Executor::load(gpu, program, |n| compiled.weight(n)))?;
            let data = pollster::block_on(executor.run(gpu, &inputs))?
                .remove(name)
                .map(|o| o.data);
            (inputs.batch, data)
        }
        Engine::Compiled {
            gpu,
            buckets,
            executors,
        } => {
            let longest = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
            let no_bucket = || PredictError::NoBucket {
                batch: sequences.len(),
                seq: longest,
            };
            let (index, bucket) = buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.program.batch >= sequences.len() && b.program.seq >= longest)
                .min_by_key(|(_, b)| b.program.batch * b.program.seq)
                .ok_or_else(no_bucket)?;
            let (batch, seq) = (bucket.program.batch, bucket.program.seq);
            let inputs = ModelInputs::pad_to_bucket(sequences, batch, seq, pad_id, positions);
            let mut executors = executors.borrow_mut();
            let executor = match executors.entry(index) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let program = bucket.program.clone();
                    let load = Executor::load(gpu, program, |n| model.weight(n));
                    entry.insert(pollster::block_on(load)?)
                }
            };
            let outputs = pollster::block_on(executor.run(gpu, &inputs))?;
            (batch, outputs.get(name).map(|o| o.data.clone()))
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
