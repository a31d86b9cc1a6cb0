//! Runs a compiled artifact's programs: each batch goes to the smallest
//! bucket that holds it, padded to the bucket's shape; an executor is made
//! once a bucket, on first use, and all share one set of weight buffers.
//! Shared by the native command and the browser, down to the predictions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::artifact::{Bucket, ModelInfo, OutputKind};
use crate::device::{Gpu, GpuError};
use crate::executor::{Executor, WeightBuffers};
use crate::inputs::ModelInputs;
use crate::inputs::PositionScheme;
use crate::prediction::{
    assemble, prediction_outputs, request_sequences, Prediction, Request, RequestError,
};
use crate::tokenizer::{Encoding, Overflow, TextTokenizer};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "a batch of {batch} sequences of up to {seq} tokens fits no compiled bucket; \
         recompile with a larger --max-seq or --batch"
    )]
    NoBucket { batch: usize, seq: usize },
    #[error("the program has no output {0}")]
    NoOutput(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Request(#[from] RequestError),
}

pub struct Session {
    buckets: Vec<Bucket>,
    pad_id: u32,
    positions: PositionScheme,
    output: OutputKind,
    /// Shared out by `Rc` so that no borrow of the map lives across an await
    /// (the page may run two predictions at once).
    executors: RefCell<HashMap<usize, Rc<Executor>>>,
    weights: WeightBuffers,
}

impl Session {
    /// A session for `model`'s compiled `buckets`.
    pub fn new(buckets: Vec<Bucket>, model: &ModelInfo) -> Self {
        Self {
            buckets,
            pad_id: model.pad_token_id,
            positions: model.positions,
            output: model.output,
            executors: RefCell::new(HashMap::new()),
            weights: WeightBuffers::default(),
        }
    }

    /// Uploads the weights of every bucket now rather than on each bucket's
    /// first run; after it the caller's copy of the weights can go.
    pub fn upload_weights<'w>(
        &self,
        gpu: &Gpu,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<(), SessionError> {
        for bucket in &self.buckets {
            self.weights.upload(gpu, &bucket.program, &weight)?;
        }
        Ok(())
    }

    /// The most sequences one run takes.
    pub fn max_batch(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.program.batch)
            .max()
            .unwrap_or(1)
    }

    /// The longest sequence any bucket takes.
    pub fn max_seq(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.program.seq)
            .max()
            .unwrap_or(0)
    }

    /// The predictions of `requests`, tokenized by `tokenizer`, in runs of
    /// at most [`Session::max_batch`] sequences.
    pub async fn predict<'w>(
        &self,
        gpu: &Gpu,
        tokenizer: &TextTokenizer,
        requests: &[Request],
        overflow: Overflow,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<Vec<Prediction>, SessionError> {
        let sequences = request_sequences(self.output, tokenizer, requests, overflow)?;
        let names = prediction_outputs(self.output);
        let mut rows = vec![Vec::new(); names.len()];
        for batch in sequences.chunks(self.max_batch()) {
            let ran = self.run_outputs(gpu, batch, names, &weight).await?;
            for (all, some) in rows.iter_mut().zip(ran) {
                all.extend(some);
            }
        }
        Ok(assemble(self.output, requests, rows))
    }

    /// Output `name`, one row a sequence, for at most [`Session::max_batch`]
    /// sequences; `weight(name)` gives the data of a weight.
    pub async fn run<'w>(
        &self,
        gpu: &Gpu,
        sequences: &[Encoding],
        name: &str,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<Vec<Vec<f32>>, SessionError> {
        let mut outputs = self.run_outputs(gpu, sequences, &[name], weight).await?;
        Ok(outputs.remove(0))
    }

    /// Each output of `names`, one row a sequence, from one run of at most
    /// [`Session::max_batch`] sequences: `[name][sequence]`.
    pub async fn run_outputs<'w>(
        &self,
        gpu: &Gpu,
        sequences: &[Encoding],
        names: &[&str],
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<Vec<Vec<Vec<f32>>>, SessionError> {
        let longest = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let (index, bucket) = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.program.batch >= sequences.len() && b.program.seq >= longest)
            .min_by_key(|(_, b)| b.program.batch * b.program.seq)
            .ok_or(SessionError::NoBucket {
                batch: sequences.len(),
                seq: longest,
            })?;
        let (batch, seq) = (bucket.program.batch, bucket.program.seq);
        let inputs = ModelInputs::pad_to_bucket(sequences, batch, seq, self.pad_id, self.positions);
        let cached = self.executors.borrow().get(&index).cloned();
        let executor = match cached {
            Some(executor) => executor,
            None => {
                let program = bucket.program.clone();
                let executor = Executor::load_sharing(gpu, program, &self.weights, weight).await?;
                let executor = Rc::new(executor);
                self.executors.borrow_mut().insert(index, executor.clone());
                executor
            }
        };
        let mut outputs = executor.run(gpu, &inputs).await?;
        names
            .iter()
            .map(|&name| {
                let output = outputs
                    .remove(name)
                    .ok_or_else(|| SessionError::NoOutput(name.into()))?;
                Ok(rows_of(&output.data, batch, sequences.len()))
            })
            .collect()
    }
}

/// The first `count` of a `[rows, width]` output's rows.
pub fn rows_of(data: &[f32], rows: usize, count: usize) -> Vec<Vec<f32>> {
    let width = data.len() / rows.max(1);
    data.chunks(width.max(1))
        .take(count)
        .map(<[f32]>::to_vec)
        .collect()
}
