//! Fine-tuning a sequence-pair classifier on the CPU reference: the public
//! Robust-XLT / XTREME recipe (AdamW, linear schedule, global-norm clipping,
//! gradient accumulation, English dev accuracy every few steps, the
//! checkpoint that strictly beats the best so far kept). The training graph
//! and its backward come from `Model::training_graph` and `passes::autodiff`;
//! on the GPU the same graphs run compiled (gpu.rs), the parameters staying
//! on the adapter between steps.

pub mod augment;
mod gpu;
pub mod method;
pub mod perturbation;
pub mod programs;

use method::{Method, Parallel, Start};
use perturbation::{ascend, largest_norm, noise, project, real_tokens, stream, Use};
use programs::Parameter;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use xltc_runtime::{Encoding, ModelInputs, Overflow, SplitMix64, TextTokenizer, TokenizerError};

use crate::evaluate::argmax;
use crate::frontend::Model;
use crate::ir::{AlignmentLoss, Graph};
use crate::passes::{
    autodiff, gradient_name, perturbation_gradient, AutodiffError, WORD_EMBEDDING_GRADIENT,
};
use crate::reference::{
    self, adamw_step, clip_by_global_norm, decays, linear_schedule, AdamW, ReferenceError, Tensor,
    TrainingInputs,
};

/// The recipe's settings; defaults are the public code's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule spans them).
    pub max_steps: Option<usize>,
    /// Sequences a forward and backward.
    pub batch: usize,
    /// Micro-batches an optimizer step.
    pub accumulation: usize,
    pub lr: f64,
    /// Warm-up, in optimizer steps.
    pub warmup: usize,
    pub weight_decay: f64,
    pub clip: f64,
    pub max_len: usize,
    pub seed: u64,
    /// English dev accuracy every this many optimizer steps (and at the end).
    pub eval_every: usize,
    /// Dropout in training, with the model's probabilities (the recipe's);
    /// off, training computes what evaluation computes.
    pub dropout: bool,
    /// Vanilla, or a robust method and its settings.
    #[serde(default)]
    pub method: Method,
    /// Parallel data and how it is used, beside the method.
    #[serde(default)]
    pub parallel: Option<Parallel>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            epochs: 3,
            max_steps: None,
            batch: 8,
            accumulation: 4,
            lr: 2e-5,
            warmup: 0,
            weight_decay: 0.0,
            clip: 1.0,
            max_len: 128,
            seed: 7,
            eval_every: 500,
            dropout: true,
            method: Method::Vanilla,
            parallel: None,
        }
    }
}

/// One tokenized, labelled training or dev pair.
#[derive(Clone, Debug)]
pub struct Example {
    pub encoding: Encoding,
    pub label: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{origin}")]
    Tokenize {
        origin: String,
        #[source]
        source: TokenizerError,
    },
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Frontend(#[from] crate::frontend::FrontendError),
    #[error("on the GPU: {0}")]
    Gpu(String),
}

/// Tokenizes `(sentence1, sentence2, label, origin)` rows, truncating
/// longest-first at the tokenizer's maximum length as XTREME does.
pub fn encode(
    tokenizer: &TextTokenizer,
    rows: &[(String, String, u32, String)],
) -> Result<Vec<Example>, TrainError> {
    rows.iter()
        .map(|(a, b, label, origin)| {
            let encoding = tokenizer
                .encode(a, Some(b), Overflow::Truncate)
                .map_err(|source| TrainError::Tokenize {
                    origin: origin.clone(),
                    source,
                })?;
            Ok(Example {
                encoding,
                label: *label,
            })
        })
        .collect()
}

/// What a forward and backward pass computes.
#[derive(Clone, Copy, Debug)]
pub enum Pass {
    /// The task's cross-entropy on a micro-batch of training pairs, with
    /// every parameter's gradient.
    Task,
    /// The alignment term (measured as it says) on parallel lines, with
    /// every parameter's gradient.
    Alignment(AlignmentLoss),
    /// The task's loss and its gradient with respect to the word-embedding
    /// perturbation only (an adversarial ascent step).
    Ascent,
    /// The alignment term and its gradient with respect to the
    /// word-embedding perturbation only (the ascent on the English side of
    /// parallel lines).
    AlignmentAscent(AlignmentLoss),
}

/// Set in the micro-batch word of an alignment pass's dropout key, so its
/// masks are drawn apart from the task pass's.
const ALIGNMENT_STREAM: u32 = 1 << 31;

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub learning_rate: f64,
    pub gradient_norm: f64,
    pub sequences_per_second: f64,
    /// Adversarial training's ascent, over the step's micro-batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ascent: Option<AscentRecord>,
    /// The alignment term's loss (before its weight: the mean 1 - cosine,
    /// or the contrastive loss), over the step's micro-batches; with the
    /// English side attacked, the attacked one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment_loss: Option<f64>,
    /// The ascent on the alignment term's English sentences, when attacked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment_ascent: Option<AscentRecord>,
}

/// What projected gradient ascent did in one optimizer step: the loss where
/// it started (the clean loss when it starts at zero) and where it ended,
/// each the mean over the step's micro-batches, and the largest norm any
/// perturbation reached (in the method's norm).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AscentRecord {
    pub start_loss: f64,
    pub perturbed_loss: f64,
    pub largest_norm: f64,
}

impl AscentRecord {
    /// The mean losses and the largest norm of a step's micro-batches' records.
    fn mean(records: &[AscentRecord]) -> Option<AscentRecord> {
        let n = records.len() as f64;
        (!records.is_empty()).then(|| AscentRecord {
            start_loss: records.iter().map(|a| a.start_loss).sum::<f64>() / n,
            perturbed_loss: records.iter().map(|a| a.perturbed_loss).sum::<f64>() / n,
            largest_norm: records.iter().map(|a| a.largest_norm).fold(0.0, f64::max),
        })
    }
}

/// The parameters, their AdamW moments and where training stands.
pub struct Trainer<'m> {
    model: &'m Model,
    pub settings: Settings,
    /// (checkpoint name, shape, data) of every parameter, in graph order.
    pub params: Vec<Parameter>,
    /// AdamW's first and second moments of each parameter.
    pub moments: Vec<(Vec<f32>, Vec<f32>)>,
    /// Optimizer steps done.
    pub step: usize,
    /// On the CPU, each parameter's gradient summed over a step's passes;
    /// kept from step to step so that no step allocates them again.
    gradient_sums: Vec<Vec<f32>>,
    graphs: HashMap<(usize, usize), Graph>,
    forward_graphs: HashMap<(usize, usize), Graph>,
    ascent_graphs: HashMap<(usize, usize), Graph>,
    alignment_graphs: HashMap<(usize, usize), Graph>,
    alignment_ascent_graphs: HashMap<(usize, usize), Graph>,
    /// Parallel lines (a sentence and its translation, tokenized alone)
    /// for the alignment term.
    pub parallel: Vec<(Encoding, Encoding)>,
    /// Where the steps run: None on the CPU reference. On the GPU,
    /// `params` and `moments` are what [`Trainer::sync`] last read back.
    gpu: Option<Box<gpu::GpuSteps>>,
}

impl<'m> Trainer<'m> {
    pub fn new(model: &'m Model, settings: Settings) -> Result<Self, TrainError> {
        let params = programs::parameters(model)?;
        let moments = params
            .iter()
            .map(|(_, _, p)| (vec![0.0; p.len()], vec![0.0; p.len()]))
            .collect();
        Ok(Self {
            model,
            settings,
            params,
            moments,
            step: 0,
            gradient_sums: Vec::new(),
            graphs: HashMap::new(),
            forward_graphs: HashMap::new(),
            ascent_graphs: HashMap::new(),
            alignment_graphs: HashMap::new(),
            alignment_ascent_graphs: HashMap::new(),
            parallel: Vec::new(),
            gpu: None,
        })
    }

    /// A trainer whose steps run on the GPU (the adapter wgpu finds),
    /// compiling each bucket's programs on first use.
    pub fn on_gpu(model: &'m Model, settings: Settings) -> Result<Self, TrainError> {
        Self::on_gpu_with(model, settings, None)
    }

    /// A trainer on the GPU that runs `stored`'s programs (an artifact's,
    /// from `xltc compile --training`) and compiles only the buckets they
    /// lack. They must have been compiled for this model's parameters and
    /// these settings' dropout and weight decay.
    pub fn on_gpu_with(
        model: &'m Model,
        settings: Settings,
        stored: Option<xltc_runtime::artifact::Training>,
    ) -> Result<Self, TrainError> {
        let mut trainer = Self::new(model, settings)?;
        if let Some(training) = &stored {
            let settings = &trainer.settings;
            if training.parameters != programs::shapes(&trainer.params)
                || training.dropout != settings.dropout
                || training.weight_decay != settings.weight_decay
            {
                return Err(TrainError::Gpu(format!(
                    "the stored training programs were compiled for other parameters or \
                     settings (dropout {}, weight decay {}; this run: dropout {}, weight decay {})",
                    training.dropout,
                    training.weight_decay,
                    settings.dropout,
                    settings.weight_decay
                )));
            }
        }
        trainer.gpu = Some(Box::new(gpu::GpuSteps::new(
            &trainer.params,
            &trainer.adam(),
            stored,
        )?));
        Ok(trainer)
    }

    /// The adapter the steps run on; None on the CPU reference.
    pub fn adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.adapter())
    }

    /// Reads the parameters and moments back from the GPU into `params`
    /// and `moments` (nothing to do on the CPU).
    pub fn sync(&mut self) -> Result<(), TrainError> {
        let Some(gpu) = &self.gpu else {
            return Ok(());
        };
        let values = gpu.read()?;
        for (((_, _, p), (m, v)), [param, first, second]) in
            self.params.iter_mut().zip(&mut self.moments).zip(values)
        {
            (*p, *m, *v) = (param, first, second);
        }
        Ok(())
    }

    /// Writes `params` and `moments` (a restored state) to the GPU.
    pub fn upload(&mut self) -> Result<(), TrainError> {
        let Some(gpu) = &self.gpu else {
            return Ok(());
        };
        let values: Vec<[&[f32]; 3]> = self
            .params
            .iter()
            .zip(&self.moments)
            .map(|((_, _, p), (m, v))| [&p[..], &m[..], &v[..]])
            .collect();
        gpu.write(&values)
    }

    fn adam(&self) -> AdamW {
        AdamW {
            weight_decay: self.settings.weight_decay,
            ..AdamW::default()
        }
    }

    /// Optimizer steps the run takes: every epoch's full and partial
    /// accumulation groups, or --max-steps.
    pub fn total_steps(&self, examples: usize) -> usize {
        let per_step = self.settings.batch * self.settings.accumulation;
        let per_epoch = examples.div_ceil(per_step.max(1));
        let all = per_epoch * self.settings.epochs;
        self.settings.max_steps.map_or(all, |m| m.min(all))
    }

    /// The order of epoch `epoch`'s examples: a SplitMix64 shuffle keyed by
    /// the seed and the epoch, the same on every machine.
    pub fn epoch_order(&self, examples: usize, epoch: usize) -> Vec<usize> {
        let mut rng =
            SplitMix64::new(self.settings.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let mut order: Vec<usize> = (0..examples).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        order
    }

    /// A padded batch; `micro` numbers it within the optimizer step, which
    /// with the step keys its dropout.
    /// On the CPU to the longest sequence; on the GPU to a bucket of `rows`
    /// rows (the rows past the batch are padding, their example mask 0) of
    /// a length rounded up by [`programs::sequence_bucket`].
    fn padded(
        &self,
        batch: &[&Example],
        micro: usize,
        rows: usize,
    ) -> (ModelInputs, TrainingInputs) {
        let encodings: Vec<Encoding> = batch.iter().map(|e| e.encoding.clone()).collect();
        let config = &self.model.config;
        let (pad, positions) = (config.pad_token_id, self.model.position_scheme());
        let inputs = if self.gpu.is_some() {
            let longest = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(1);
            let seq = programs::sequence_bucket(longest, self.model.max_tokens());
            ModelInputs::pad_to_bucket(&encodings, rows.max(batch.len()), seq, pad, positions)
        } else {
            ModelInputs::pad(&encodings, 0, pad, positions)
        };
        let mut labels: Vec<u32> = batch.iter().map(|e| e.label).collect();
        labels.resize(inputs.batch, 0);
        let mut example_mask = vec![1.0; batch.len()];
        example_mask.resize(inputs.batch, 0.0);
        let training = TrainingInputs {
            labels,
            example_mask,
            word_embedding_delta: vec![0.0; inputs.batch * inputs.seq * config.hidden],
            dropout_key: vec![
                self.settings.seed as u32,
                (self.settings.seed >> 32) as u32,
                self.step as u32,
                micro as u32,
            ],
        };
        (inputs, training)
    }

    /// One optimizer step over `group` (up to batch x accumulation
    /// examples): forward and backward a micro-batch at a time (a method
    /// may make several passes of one, each weighted), each loss divided by
    /// the accumulation steps, then clipping and AdamW.
    pub fn train_step(
        &mut self,
        group: &[&Example],
        epoch: usize,
        total: usize,
    ) -> Result<StepRecord, TrainError> {
        let started = std::time::Instant::now();
        let scale = 1.0 / self.settings.accumulation as f32;
        let lr = self.settings.lr * linear_schedule(self.step, total, self.settings.warmup);
        let batches: Vec<(ModelInputs, TrainingInputs)> = group
            .chunks(self.settings.batch)
            .enumerate()
            .map(|(index, micro)| self.padded(micro, index, self.settings.batch))
            .collect();
        // On the CPU, the gradients are summed here; on the GPU, in its buffers.
        let mut sums = self.gpu.is_none().then(|| self.zeroed_gradient_sums());
        let mut loss = 0.0;
        let mut ascents = Vec::new();
        let mut alignments = Vec::new();
        let mut alignment_ascents = Vec::new();
        for (micro, (inputs, training)) in batches.iter().enumerate() {
            let (passes, ascent) = self.passes(inputs, training, micro)?;
            let mut last = 0.0;
            for pass in &passes {
                last = self.backward(inputs, pass, scale, &mut sums, Pass::Task)?;
                loss += last * scale as f64;
            }
            if let (Some(mut ascent), Method::Adv(adv)) = (ascent, &self.settings.method) {
                // The last pass is the perturbed one, its examples weighted
                // 1 - clean weight.
                ascent.perturbed_loss = last / (1.0 - adv.clean_weight);
                ascents.push(ascent);
            }
            if let Some((weight, measure)) = self.alignment_term() {
                let (inputs, mut training) = self.parallel_batch(micro, weight);
                let mut attacked = None;
                if let Some(adv) = self.alignment_attack() {
                    // The English sentences (the first half of the rows) only.
                    let mut real = real_tokens(&inputs.attention_mask, &training.example_mask);
                    real[inputs.batch / 2 * inputs.seq..].fill(false);
                    let (delta, record) = self.attack(
                        Pass::AlignmentAscent(measure),
                        &inputs,
                        &training,
                        &real,
                        &adv,
                        micro,
                    )?;
                    training.word_embedding_delta = delta;
                    attacked = Some(record);
                }
                let pass = self.backward(
                    &inputs,
                    &training,
                    scale,
                    &mut sums,
                    Pass::Alignment(measure),
                )?;
                if let Some(mut record) = attacked {
                    record.perturbed_loss = pass / weight;
                    alignment_ascents.push(record);
                }
                alignments.push(pass / weight);
            }
        }
        let adam = self.adam();
        let step = self.step as u32 + 1;
        let clip = self.settings.clip;
        let norm = match (self.gpu.as_deref_mut(), sums) {
            (Some(gpu), _) => gpu.optimizer_step(&adam, step, lr, scale as f64, clip)?,
            (None, Some(mut grads)) => {
                let mut slices: Vec<&mut [f32]> = grads.iter_mut().map(|g| &mut g[..]).collect();
                let norm = clip_by_global_norm(&mut slices, clip);
                for (((name, _, p), (m, v)), g) in
                    self.params.iter_mut().zip(&mut self.moments).zip(&grads)
                {
                    adamw_step(p, g, m, v, step, lr, decays(name), &adam);
                }
                self.gradient_sums = grads;
                norm
            }
            (None, None) => unreachable!("a CPU trainer sums its gradients on the host"),
        };
        self.step += 1;
        Ok(StepRecord {
            step: self.step,
            epoch,
            loss,
            learning_rate: lr,
            gradient_norm: norm,
            sequences_per_second: group.len() as f64 / started.elapsed().as_secs_f64().max(1e-9),
            ascent: AscentRecord::mean(&ascents),
            alignment_loss: (!alignments.is_empty())
                .then(|| alignments.iter().sum::<f64>() / alignments.len() as f64),
            alignment_ascent: AscentRecord::mean(&alignment_ascents),
        })
    }

    /// The CPU's gradient sums, zero, made on the first step only.
    fn zeroed_gradient_sums(&mut self) -> Vec<Vec<f32>> {
        let mut sums = std::mem::take(&mut self.gradient_sums);
        if sums.len() != self.params.len() {
            sums = self
                .params
                .iter()
                .map(|(_, _, p)| vec![0.0; p.len()])
                .collect();
        }
        for sum in &mut sums {
            sum.par_iter_mut().for_each(|s| *s = 0.0);
        }
        sums
    }

    /// The passes the method makes over micro-batch `micro`: its training
    /// inputs as they are (vanilla, RS-DA), with noise on the word
    /// embeddings (RS-RP), or with the ascent's perturbation (adversarial),
    /// beside the clean pass when the clean loss has a weight; each pass's
    /// example mask carries its weight.
    fn passes(
        &mut self,
        inputs: &ModelInputs,
        training: &TrainingInputs,
        micro: usize,
    ) -> Result<(Vec<TrainingInputs>, Option<AscentRecord>), TrainError> {
        let real = real_tokens(&inputs.attention_mask, &training.example_mask);
        let (seed, width) = (self.settings.seed, self.model.config.hidden);
        let weighted = |weight: f64, delta: Vec<f32>| TrainingInputs {
            example_mask: training
                .example_mask
                .iter()
                .map(|&m| m * weight as f32)
                .collect(),
            word_embedding_delta: delta,
            ..training.clone()
        };
        match self.settings.method.clone() {
            Method::Vanilla | Method::RsDa(_) => Ok((vec![training.clone()], None)),
            Method::RsRp(settings) => {
                let key = stream(self.step, micro, Use::Noise);
                let delta = noise(
                    settings.law,
                    settings.sigma,
                    seed,
                    key,
                    &real,
                    inputs.seq,
                    width,
                );
                Ok((vec![weighted(1.0, delta)], None))
            }
            Method::Adv(settings) => {
                let plain = weighted(1.0, training.word_embedding_delta.clone());
                let (delta, record) =
                    self.attack(Pass::Ascent, inputs, &plain, &real, &settings, micro)?;
                let mut passes = Vec::new();
                if settings.clean_weight > 0.0 {
                    passes.push(weighted(
                        settings.clean_weight,
                        training.word_embedding_delta.clone(),
                    ));
                }
                if settings.clean_weight < 1.0 {
                    passes.push(weighted(1.0 - settings.clean_weight, delta));
                }
                Ok((passes, Some(record)))
            }
        }
    }

    /// Projected gradient ascent on the word-embedding perturbation of
    /// `inputs`' tokens where `real`, on the loss of `pass` (the task's, or
    /// the alignment term's), in `settings`' ball: the perturbation and
    /// what the ascent did (its perturbed loss is the caller's to fill, once
    /// the perturbed pass ran).
    fn attack(
        &mut self,
        pass: Pass,
        inputs: &ModelInputs,
        training: &TrainingInputs,
        real: &[bool],
        settings: &method::Adversarial,
        micro: usize,
    ) -> Result<(Vec<f32>, AscentRecord), TrainError> {
        let (seed, width, seq) = (self.settings.seed, self.model.config.hidden, inputs.seq);
        let purpose = match pass {
            Pass::AlignmentAscent(_) => Use::AlignmentStart,
            _ => Use::Start,
        };
        let mut delta = match settings.init {
            Start::Zero => vec![0.0; real.len() * width],
            Start::Random => {
                let key = stream(self.step, micro, purpose);
                let uniform = method::Law::Uniform;
                let mut d = noise(uniform, settings.eps, seed, key, real, seq, width);
                project(&mut d, settings.norm, settings.eps, real, seq);
                d
            }
        };
        let mut start_loss = None;
        for _ in 0..settings.steps {
            let at = TrainingInputs {
                word_embedding_delta: delta.clone(),
                ..training.clone()
            };
            let (loss, gradient) = self.perturbation_gradient(pass, inputs, &at)?;
            start_loss.get_or_insert(loss);
            let (norm, step, eps) = (settings.norm, settings.step, settings.eps);
            ascend(&mut delta, &gradient, norm, step, eps, real, seq);
        }
        let record = AscentRecord {
            start_loss: start_loss.unwrap_or(f64::NAN),
            perturbed_loss: f64::NAN,
            largest_norm: largest_norm(&delta, settings.norm, real, seq),
        };
        Ok((delta, record))
    }

    /// The settings of the attack on the alignment term's English side, when
    /// it is attacked (the adversarial method's).
    fn alignment_attack(&self) -> Option<method::Adversarial> {
        match (&self.settings.method, &self.settings.parallel) {
            (Method::Adv(adv), Some(p)) if p.align_attack => Some(adv.clone()),
            _ => None,
        }
    }

    /// The loss of one pass (`Pass::Ascent` or `Pass::AlignmentAscent`)
    /// and its gradient with respect to the word embeddings (no parameter
    /// gradient is kept).
    fn perturbation_gradient(
        &mut self,
        pass: Pass,
        inputs: &ModelInputs,
        training: &TrainingInputs,
    ) -> Result<(f64, Vec<f32>), TrainError> {
        let (model, dropout) = (self.model, self.settings.dropout);
        if let Some(gpu) = self.gpu.as_deref_mut() {
            let mut out = gpu.run(pass, model, dropout, inputs, training)?;
            let gradient = out
                .remove(WORD_EMBEDDING_GRADIENT)
                .expect("the ascent's program gives the word embeddings' gradient");
            return Ok((out["loss"].data[0] as f64, gradient.data));
        }
        let (cache, alignment) = match pass {
            Pass::AlignmentAscent(loss) => (&mut self.alignment_ascent_graphs, Some(loss)),
            _ => (&mut self.ascent_graphs, None),
        };
        let mut out = run_with_params(cache, &self.params, inputs, training, |b, s| {
            let graph = match alignment {
                Some(loss) => model.alignment_graph(b / 2, s, dropout, loss),
                None => model.training_graph(b, s, dropout)?,
            };
            Ok(perturbation_gradient(&graph)?)
        })?;
        let gradient = out
            .remove(WORD_EMBEDDING_GRADIENT)
            .expect("the ascent's graph gives the word embeddings' gradient");
        Ok((out["loss"].data[0] as f64, gradient.data))
    }

    /// The alignment term's weight and measure, when it has a weight and
    /// there are lines.
    fn alignment_term(&self) -> Option<(f64, AlignmentLoss)> {
        let parallel = self.settings.parallel.as_ref()?;
        (parallel.align_weight > 0.0 && !self.parallel.is_empty())
            .then_some((parallel.align_weight, parallel.align_loss))
    }

    /// Micro-batch `micro`'s parallel lines for the alignment term: `batch`
    /// sentences, then their translations, each pair weighted `weight`.
    /// Lines are taken in a SplitMix64 order of the whole list, a new order
    /// each pass over it, from where the optimizer step and micro-batch are:
    /// the same lines on every machine and after a resume.
    fn parallel_batch(&self, micro: usize, weight: f64) -> (ModelInputs, TrainingInputs) {
        let (batch, lines) = (self.settings.batch, self.parallel.len());
        let first = (self.step * self.settings.accumulation + micro) * batch;
        let mut orders: HashMap<usize, Vec<usize>> = HashMap::new();
        let picked: Vec<&(Encoding, Encoding)> = (first..first + batch)
            .map(|k| {
                let (cycle, at) = (k / lines, k % lines);
                let order = orders.entry(cycle).or_insert_with(|| {
                    let key = self.settings.seed ^ 0xA11C_0000_0000 ^ cycle as u64;
                    let mut rng = SplitMix64::new(key);
                    let mut order: Vec<usize> = (0..lines).collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.below(i + 1));
                    }
                    order
                });
                &self.parallel[order[at]]
            })
            .collect();
        let encodings: Vec<Encoding> = picked
            .iter()
            .map(|(e, _)| e.clone())
            .chain(picked.iter().map(|(_, t)| t.clone()))
            .collect();
        let config = &self.model.config;
        let (pad, positions) = (config.pad_token_id, self.model.position_scheme());
        let inputs = if self.gpu.is_some() {
            let longest = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(1);
            let seq = programs::sequence_bucket(longest, self.model.max_tokens());
            ModelInputs::pad_to_bucket(&encodings, 2 * batch, seq, pad, positions)
        } else {
            ModelInputs::pad(&encodings, 0, pad, positions)
        };
        let training = TrainingInputs {
            labels: vec![0; inputs.batch],
            example_mask: vec![weight as f32; inputs.batch],
            word_embedding_delta: vec![0.0; inputs.batch * inputs.seq * config.hidden],
            dropout_key: vec![
                self.settings.seed as u32,
                (self.settings.seed >> 32) as u32,
                self.step as u32,
                (micro as u32) | ALIGNMENT_STREAM,
            ],
        };
        (inputs, training)
    }

    /// Forward and backward of one pass (of the task's loss, or of the
    /// alignment term): on the GPU its gradients are added into the
    /// gradient buffers; on the CPU into `sums`, each times `scale`.
    /// Returns its loss.
    fn backward(
        &mut self,
        inputs: &ModelInputs,
        training: &TrainingInputs,
        scale: f32,
        sums: &mut Option<Vec<Vec<f32>>>,
        pass: Pass,
    ) -> Result<f64, TrainError> {
        let (model, dropout) = (self.model, self.settings.dropout);
        if let Some(gpu) = self.gpu.as_deref_mut() {
            return Ok(gpu.run(pass, model, dropout, inputs, training)?["loss"].data[0] as f64);
        }
        let out = match pass {
            Pass::Task => {
                run_with_params(&mut self.graphs, &self.params, inputs, training, |b, s| {
                    Ok(autodiff(&model.training_graph(b, s, dropout)?)?)
                })?
            }
            Pass::Alignment(loss) => run_with_params(
                &mut self.alignment_graphs,
                &self.params,
                inputs,
                training,
                |b, s| Ok(autodiff(&model.alignment_graph(b / 2, s, dropout, loss))?),
            )?,
            Pass::Ascent | Pass::AlignmentAscent(_) => {
                unreachable!("an ascent step keeps no parameter gradient")
            }
        };
        let sums = sums
            .as_mut()
            .expect("a CPU trainer sums its gradients on the host");
        for ((name, _, _), sum) in self.params.iter().zip(sums) {
            if let Some(g) = out.get(&gradient_name(name)) {
                sum.par_iter_mut()
                    .zip(&g.data)
                    .for_each(|(s, v)| *s += v * scale);
            }
        }
        Ok(out["loss"].data[0] as f64)
    }

    /// Accuracy of the current parameters on `examples` (argmax of the logits).
    pub fn accuracy(&mut self, examples: &[Example]) -> Result<f64, TrainError> {
        let mut correct = 0;
        let rows = self.settings.batch.max(1) * programs::EVALUATION_BATCHES;
        for chunk in examples.chunks(rows) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let (inputs, training) = self.padded(&refs, 0, rows);
            let model = self.model;
            let logits = match &mut self.gpu {
                Some(gpu) => gpu.logits(model, &inputs)?,
                None => run_with_params(
                    &mut self.forward_graphs,
                    &self.params,
                    &inputs,
                    &training,
                    |b, s| Ok(model.graph(b, s)),
                )?
                .remove("logits")
                .expect("a classifier's graph gives logits"),
            };
            let logits = &logits;
            for (i, e) in chunk.iter().enumerate() {
                correct += usize::from(argmax(logits.row(i)) == e.label as usize);
            }
        }
        Ok(correct as f64 / examples.len().max(1) as f64)
    }
}

/// Runs, on the CPU reference in f32, the graph of `inputs`' shape from
/// `cache` (built by `build(batch, seq)` on first use) with the current
/// parameters.
fn run_with_params(
    cache: &mut HashMap<(usize, usize), Graph>,
    params: &[Parameter],
    inputs: &ModelInputs,
    training: &TrainingInputs,
    build: impl FnOnce(usize, usize) -> Result<Graph, TrainError>,
) -> Result<BTreeMap<String, Tensor>, TrainError> {
    let key = (inputs.batch, inputs.seq);
    let graph = match cache.entry(key) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(build(key.0, key.1)?),
    };
    let by_name: HashMap<&str, &[f32]> = params
        .iter()
        .map(|(name, _, data)| (name.as_str(), data.as_slice()))
        .collect();
    let weights = |name: &str| by_name.get(name).copied();
    Ok(reference::run_fast(graph, inputs, training, &weights)?)
}
