//! Randomized smoothing at evaluation (PAPER.md, method 2; Cohen et al.
//! 2019): a classifier's input runs many times with noise on its word
//! embeddings, and the smoothed classifier predicts the class most draws
//! vote for, or abstains when the vote is too close to call; with
//! certification, a second, independent set of draws bounds the top
//! class's probability and gives the L2 radius on the word embeddings
//! within which the smoothed prediction cannot change. Each input's draws
//! are keyed by the run's seed and the input's text, so an input gets the
//! same draws whatever else is evaluated and whatever the batch size.

use std::collections::HashMap;

use xltc_runtime::{Encoding, Executor, ModelInputs, SplitMix64, TrainingInputs};

use super::certify::{certify, smoothed_prediction};
use crate::codegen::{self, CodegenOptions};
use crate::frontend::Model;
use crate::ir::Graph;
use crate::passes;
use crate::predict::{Engine, PredictError};
use crate::reference;
use crate::train::method::Law;
use crate::train::perturbation::noise;
use crate::train::programs::sequence_bucket;

/// How the smoothed classifier votes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Smoothing {
    /// Noise draws an input (and as many again to certify).
    pub draws: usize,
    pub sigma: f64,
    pub law: Law,
    pub seed: u64,
    /// The significance of the abstention test and of the certificate.
    pub alpha: f64,
    /// Also certify each prediction (Gaussian noise only).
    pub certify: bool,
}

/// One input's smoothed prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Smoothed {
    /// Votes of each class over the draws.
    pub votes: Vec<u64>,
    /// The prediction; None when it abstains.
    pub class: Option<usize>,
    /// The certified class and L2 radius; None without certification or
    /// when the certificate abstains.
    pub certified: Option<(usize, f64)>,
}

/// What the draws are for: part of their keys.
const PREDICT: u64 = 0x5052_4544;
const CERTIFY: u64 = 0x4345_5254;

/// The key of an input's draws: FNV-1a of its text, mixed with the seed.
pub fn input_key(seed: u64, text: &str, pair: Option<&str>) -> u64 {
    let bytes = text.bytes().chain([0xFF]).chain(pair.unwrap_or("").bytes());
    let hash = bytes.fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    SplitMix64::new(seed ^ hash).next_u64()
}

/// Runs a classifier with a perturbation of its word embeddings: on the
/// CPU reference, or on the GPU with the fused perturbable graph of each
/// (rows, sequence) bucket, compiled on first use.
struct NoisyClassifier<'a> {
    engine: &'a Engine,
    model: &'a Model,
    graphs: HashMap<(usize, usize), Graph>,
    executors: HashMap<(usize, usize), Executor>,
}

impl NoisyClassifier<'_> {
    /// The logits [batch, labels] of `inputs` with `delta` on the word embeddings.
    fn logits(&mut self, inputs: &ModelInputs, delta: Vec<f32>) -> Result<Vec<f32>, PredictError> {
        let key = (inputs.batch, inputs.seq);
        let training = TrainingInputs {
            word_embedding_delta: delta,
            ..TrainingInputs::default()
        };
        let model = self.model;
        let gpu = match self.engine {
            Engine::Cpu => {
                let graph = self
                    .graphs
                    .entry(key)
                    .or_insert_with(|| model.perturbable_graph(key.0, key.1));
                let mut out = reference::run_fast(graph, inputs, &training, &|_| None)?;
                return Ok(out
                    .remove("logits")
                    .expect("a classifier gives logits")
                    .data);
            }
            Engine::Gpu(gpu) | Engine::Compiled { gpu, .. } => gpu,
        };
        let executor = match self.executors.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let graph = model.perturbable_graph(key.0, key.1);
                let graph = passes::fuse_with(&graph, passes::Fusions::default());
                let options = CodegenOptions::for_adapter(&gpu.adapter);
                let compiled = codegen::lower(&graph, &options)?;
                let program = compiled.program.clone();
                let load = Executor::load(gpu, program, |n| compiled.weight(n));
                e.insert(pollster::block_on(load)?)
            }
        };
        let mut out = pollster::block_on(executor.run_training(gpu, inputs, &training))?;
        Ok(out
            .remove("logits")
            .expect("a classifier gives logits")
            .data)
    }
}

/// The votes of `draws` noisy runs of `encoding`, `rows` draws a run, the
/// draws keyed by `key` and `purpose`.
#[allow(clippy::too_many_arguments)]
fn votes(
    runner: &mut NoisyClassifier,
    encoding: &Encoding,
    settings: &Smoothing,
    key: u64,
    purpose: u64,
    rows: usize,
    mut ran: impl FnMut(usize),
) -> Result<Vec<u64>, PredictError> {
    let model = runner.model;
    let (pad, positions) = (model.config.pad_token_id, model.position_scheme());
    let (width, labels) = (model.config.hidden, model.config.labels.len());
    let mut votes = vec![0u64; labels];
    let mut draw = 0;
    while draw < settings.draws {
        let count = rows.min(settings.draws - draw);
        let copies = vec![encoding.clone(); count];
        let inputs = match runner.engine {
            Engine::Cpu => ModelInputs::pad(&copies, 0, pad, positions),
            _ => {
                let seq = sequence_bucket(encoding.ids.len(), model.max_tokens());
                ModelInputs::pad_to_bucket(&copies, rows, seq, pad, positions)
            }
        };
        let seq = inputs.seq;
        let mut delta = vec![0.0f32; inputs.batch * seq * width];
        for row in 0..count {
            let real: Vec<bool> = inputs.attention_mask[row * seq..(row + 1) * seq]
                .iter()
                .map(|&m| m > 0.0)
                .collect();
            let index = ((draw + row) as u64) << 20;
            let stream = SplitMix64::new(key ^ purpose ^ index).next_u64();
            let part = noise(
                settings.law,
                settings.sigma,
                settings.seed,
                stream,
                &real,
                seq,
                width,
            );
            delta[row * seq * width..(row + 1) * seq * width].copy_from_slice(&part);
        }
        let logits = runner.logits(&inputs, delta)?;
        for row in logits.chunks_exact(labels).take(count) {
            votes[super::argmax(row)] += 1;
        }
        draw += count;
        ran(count);
    }
    Ok(votes)
}

/// The smoothed prediction of each of `inputs` (an encoding and its key
/// from [`input_key`]), `batch` draws a run; `progress` hears (runs of one
/// sequence done, total).
pub fn smooth(
    engine: &Engine,
    model: &Model,
    inputs: &[(Encoding, u64)],
    batch: usize,
    settings: &Smoothing,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Smoothed>, PredictError> {
    let mut runner = NoisyClassifier {
        engine,
        model,
        graphs: HashMap::new(),
        executors: HashMap::new(),
    };
    let rows = batch.clamp(1, settings.draws.max(1));
    let sets = if settings.certify { 2 } else { 1 };
    let total = inputs.len() * settings.draws * sets;
    let mut done = 0;
    // Inputs of like length share buckets; results go back in input order.
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].0.ids.len());
    let mut out: Vec<Option<Smoothed>> = vec![None; inputs.len()];
    for i in order {
        let (encoding, key) = &inputs[i];
        let mut tick = |n| {
            done += n;
            progress(done, total);
        };
        let predicted = votes(
            &mut runner,
            encoding,
            settings,
            *key,
            PREDICT,
            rows,
            &mut tick,
        )?;
        let certified = if settings.certify {
            let estimate = votes(
                &mut runner,
                encoding,
                settings,
                *key,
                CERTIFY,
                rows,
                &mut tick,
            )?;
            certify(&predicted, &estimate, settings.sigma, settings.alpha)
        } else {
            None
        };
        out[i] = Some(Smoothed {
            class: smoothed_prediction(&predicted, settings.alpha),
            votes: predicted,
            certified,
        });
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every input ran"))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn settings(draws: usize, sigma: f64) -> Smoothing {
        Smoothing {
            draws,
            sigma,
            law: Law::Gaussian,
            seed: 7,
            alpha: 0.001,
            certify: true,
        }
    }

    /// Votes on the CPU reference: every draw votes once, the draws do not
    /// depend on how many share a run, another seed draws others, and the
    /// prediction and certificate are those of the votes.
    #[test]
    fn votes_are_counted_per_draw_whatever_the_batch() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        let model = Model::load(&dir.join("tiny-bert")).unwrap();
        let inputs: Vec<(Encoding, u64)> = [7usize, 12, 4]
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let encoding = Encoding {
                    ids: (0..len)
                        .map(|t| 3 + ((t * 5 + i * 11) % 60) as u32)
                        .collect(),
                    type_ids: vec![0; len],
                };
                (encoding, input_key(7, &format!("input {i}"), None))
            })
            .collect();
        // Noise large beside the tiny model's embeddings, so votes split.
        let run = |batch, s: &Smoothing| {
            smooth(&Engine::Cpu, &model, &inputs, batch, s, |_, _| {}).unwrap()
        };
        let wide = settings(30, 0.5);
        let a = run(4, &wide);
        assert_eq!(a, run(30, &wide), "the batch size changed the draws");
        for s in &a {
            assert_eq!(s.votes.iter().sum::<u64>(), 30);
            assert_eq!(s.class, smoothed_prediction(&s.votes, 0.001));
        }
        assert!(
            a.iter()
                .any(|s| s.votes.iter().filter(|&&v| v > 0).count() > 1),
            "{a:?}"
        );
        let other = Smoothing { seed: 8, ..wide };
        assert_ne!(a, run(4, &other), "another seed drew the same noise");
    }
}
