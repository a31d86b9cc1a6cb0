//! The training methods of PAPER.md and their settings: vanilla
//! fine-tuning, randomized smoothing with data augmentation (RS-DA: the
//! data change, the loop does not), adversarial training on the word
//! embeddings (PGD) and randomized smoothing with random perturbation
//! (RS-RP: noise on the word embeddings). A run records its method in
//! log.jsonl, its saved state and its checkpoints' config, so every result
//! says how it was made.

use std::path::PathBuf;

use crate::ir::AlignmentLoss;

/// How a run trains.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Method {
    /// The public recipe as it is.
    #[default]
    Vanilla,
    /// Synonym-substituted copies of the training pairs.
    RsDa(Augmentation),
    /// Projected gradient ascent on a perturbation of the word embeddings,
    /// then a step on the perturbed (and optionally the clean) loss.
    Adv(Adversarial),
    /// A fresh random perturbation of the word embeddings every micro-batch.
    RsRp(Noise),
}

/// The methods, as `xltc train --method` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodKind {
    Vanilla,
    RsDa,
    Adv,
    RsRp,
}

/// The alignment term's measures, as `xltc train --align-loss` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AlignLossKind {
    Cosine,
    Contrastive,
    SymmetricKl,
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla",
            Method::RsDa(_) => "rs-da",
            Method::Adv(_) => "adv",
            Method::RsRp(_) => "rs-rp",
        }
    }
}

/// RS-DA's settings: the paper's rule by default, each variant beyond it a
/// switch that is off unless asked for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    /// The synonym sets; None: the shipped counter-fitted neighbours.
    pub synonyms: Option<PathBuf>,
    /// Perturbed copies of each training pair (10 for PAWS-X, 3 for XNLI).
    pub copies: usize,
    /// Seeds the draws (recorded; the paper's code seeds nothing).
    pub seed: u64,
    /// Beyond the paper: look words up lower-cased with their punctuation
    /// set aside, and put both back on the substitute.
    pub ignore_case: bool,
    /// Beyond the paper: new copies every epoch (the paper draws once).
    pub every_epoch: bool,
    /// Beyond the paper: keep each original pair beside its copies.
    pub keep_original: bool,
}

/// The norm ball a perturbation lives in.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// Each token's perturbation within L2 radius eps.
    L2Token,
    /// Each sequence's perturbation (all its real tokens) within L2 radius eps.
    L2Seq,
    /// Every element within [-eps, eps].
    Linf,
}

/// Where projected gradient ascent starts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    Zero,
    /// A uniform draw in the ball's bounding box, projected into the ball.
    Random,
}

/// Adversarial training's settings (xltc's choices: the paper's could not
/// be read).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adversarial {
    pub eps: f64,
    /// The ascent's step size alpha.
    pub step: f64,
    /// Ascent steps K.
    pub steps: usize,
    pub norm: Norm,
    pub init: Start,
    /// The clean loss's weight in the step's objective: 0 trains on the
    /// perturbed loss only, 0.5 on their mean.
    pub clean_weight: f64,
}

/// The law of RS-RP's noise.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Law {
    /// Normal, standard deviation sigma, independent per element.
    Gaussian,
    /// Uniform in [-sigma, sigma], independent per element.
    Uniform,
}

/// RS-RP's settings (xltc's choices).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Noise {
    pub law: Law,
    pub sigma: f64,
}

/// Parallel data (an English text and its translation a line, from the
/// training side only), used beside any method: an alignment term that
/// pulls the representations of a sentence and its translation together,
/// and code-switching of the training pairs' sentences.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parallel {
    pub files: Vec<PathBuf>,
    /// The alignment term's weight in the objective (0: none): each
    /// micro-batch also takes `batch` lines, and the loss adds this times
    /// `align_loss` of the mean-pooled last hidden states of the sentences
    /// and of their translations (for a loss on the head, `batch` training
    /// pairs and their translated versions, and the head's distributions).
    pub align_weight: f64,
    /// The chance that a training sentence with a translation in the files
    /// is replaced by one (drawn once, before training; 0: none).
    pub code_switch: f64,
    /// With the adversarial method: the alignment term's English sentences
    /// are attacked first (the method's ascent, on the alignment loss, on
    /// the English side only), so the term pulls an attacked sentence and
    /// its clean translation together.
    #[serde(default)]
    pub align_attack: bool,
    /// What the alignment term measures (runs from before it was a
    /// setting measured 1 - cosine).
    #[serde(default)]
    pub align_loss: AlignmentLoss,
}
