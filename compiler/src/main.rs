//! The `xltc` command.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use xltc::train::method::{AlignLossKind, Law, MethodKind, Norm, Start};

#[derive(Parser)]
#[command(
    name = "xltc",
    version,
    about = "Compiler and runtime for robust zero-shot cross-lingual transfer with multilingual encoders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Predict with a model or a compiled artifact: the label and its
    /// probabilities for a sequence classifier, the sentence embedding for an
    /// encoder without a head.
    Run(RunArgs),
    /// Compile a model into a .xltc artifact of WGSL kernel programs, one for
    /// each batch and sequence-length bucket.
    Compile(CompileArgs),
    /// Show what an artifact holds: buckets, kernels, dispatches, buffers,
    /// peak memory and FLOPs per sequence.
    Inspect(InspectArgs),
    /// Run one program of a model and show where its time goes: each kernel
    /// family's and each dispatch's time and share, GFLOP/s, and the bytes
    /// it binds a second; GPU timestamps where the adapter has them.
    Profile(ProfileArgs),
    /// Zero-shot cross-lingual evaluation on a folder of pair files (XTREME
    /// layout): accuracy per language and language pair, robustness to synonym
    /// substitution, agreement with English; writes a report with plots.
    Eval(EvalArgs),
    /// Fine-tune a sequence-pair classifier on English pairs with the public
    /// Robust-XLT / XTREME recipe (on the CPU reference for now): Hugging
    /// Face checkpoints best/ and last/, log.jsonl and loss.svg in OUT.
    Train(Box<TrainArgs>),
}

#[derive(Args)]
pub struct RunArgs {
    /// A compiled model.xltc, or model.safetensors with config.json and
    /// tokenizer.json beside it, or the folder that holds them.
    pub model: PathBuf,
    /// The sentence to predict.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// A second sentence. A classifier reads the pair as one input (with
    /// token type ids); an embedding model embeds both and prints their cosine
    /// similarity.
    #[arg(long, requires = "text")]
    pub pair: Option<String>,
    /// Many inputs, one a line: `text` or `text<TAB>pair`. Empty lines and
    /// lines starting with # are skipped.
    #[arg(long, value_name = "TSV")]
    pub file: Option<PathBuf>,
    /// Maximum tokens per sequence, special tokens included (for an artifact,
    /// at most its largest sequence bucket).
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Cut inputs longer than --max-len (longest first for pairs) instead of
    /// refusing them with an error.
    #[arg(long)]
    pub truncate: bool,
    /// Sequences per batch (for an artifact, its largest batch bucket).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Run on the CPU reference implementation instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// Print one JSON object a line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CompileArgs {
    /// model.safetensors with config.json and tokenizer.json beside it, or the folder.
    pub model: PathBuf,
    /// Where to write the artifact.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The longest sequence, special tokens included: the largest sequence
    /// bucket (smaller buckets are the powers of two from 16).
    #[arg(long, default_value_t = 128)]
    pub max_seq: usize,
    /// The most sequences a run: the largest batch bucket (the other is 1).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// The largest storage binding a kernel may use; WebGPU's default is
    /// 134217728 (128 MiB), which every browser allows.
    #[arg(long, default_value_t = xltc::codegen::WEBGPU_MAX_BINDING_BYTES)]
    pub max_binding_bytes: u64,
    /// Skip the fusion passes: one kernel an IR op (GEMM, bias, GELU and the
    /// attention steps each on their own).
    #[arg(long, conflicts_with = "fuse_all")]
    pub no_fuse: bool,
    /// Every fusion, also the two that are slower than the kernels they
    /// replace on lavapipe (GEMM + residual + LayerNorm, attention) and so
    /// are off by default; `--tune` times them on the adapter present.
    #[arg(long)]
    pub fuse_all: bool,
    /// Every GEMM on the tiled kernel (workgroup memory), none on the lane
    /// kernel made for adapters that run lanes on a CPU (lavapipe,
    /// SwiftShader); on a real GPU the tiled one may be the faster.
    #[arg(long, conflicts_with = "subgroup_gemm")]
    pub tiled_gemm: bool,
    /// Every GEMM that suits the lane kernel on its subgroup form (x's rows
    /// loaded once per 8 lanes and broadcast); the artifact then runs only
    /// on adapters with subgroups of at least 8 lanes (lavapipe has 8).
    #[arg(long)]
    pub subgroup_gemm: bool,
    /// Time the GEMM kernels (tiled, lane, and the lane kernel with
    /// subgroups where the adapter has subgroups of 8 lanes or more) on this
    /// machine's adapter for every GEMM of the buckets and keep the fastest
    /// that is exact against the CPU reference (`inspect` shows the
    /// choices); the artifact is then tuned for this adapter.
    #[arg(long)]
    pub tune: bool,
    /// Also compile training's programs (a sequence classifier only): for
    /// each sequence bucket (multiples of 16 up to --max-seq) a train step
    /// of --train-batch rows and a dev-evaluation forward, and the AdamW
    /// optimizer step; `xltc inspect` shows the memory each bucket needs.
    #[arg(long)]
    pub training: bool,
    /// With --training: sequences a micro-batch (`xltc train --batch`).
    #[arg(long, default_value_t = 8, requires = "training")]
    pub train_batch: usize,
    /// With --training: AdamW's decoupled weight decay (`xltc train --weight-decay`).
    #[arg(long, default_value_t = 0.0, requires = "training")]
    pub weight_decay: f64,
    /// With --training: train steps without dropout (`xltc train --no-dropout`).
    #[arg(long, requires = "training")]
    pub no_dropout: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A compiled model.xltc, or a model folder (or its model.safetensors).
    /// A sequence-pair classifier is scored by argmax; an encoder without a
    /// head by the cosine of the two sentence embeddings against one
    /// threshold tuned on dev-en.tsv. Leave out with --baseline.
    #[arg(required_unless_present = "baseline", conflicts_with = "baseline")]
    pub model: Option<PathBuf>,
    /// The folder: dev-en.tsv, test-{L}.tsv, test-{A}-{B}.tsv (sentence 1 in
    /// A, sentence 2 in B); three columns without a header, or PAWS-X's
    /// `id sentence1 sentence2 label` with it.
    #[arg(long)]
    pub data: PathBuf,
    /// The report folder (report.md, report.json, pairs.tsv, accuracy.svg, matrix.svg);
    /// default: MODEL.eval beside the model.
    #[arg(short, long, value_name = "REPORT")]
    pub output: Option<PathBuf>,
    /// Only these languages besides English (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub langs: Vec<String>,
    /// Also the generalized setting: every test-{A}-{B}.tsv.
    #[arg(long)]
    pub pairs_matrix: bool,
    /// At most N pairs a file (those with the smallest example ids, the same
    /// subset for every model).
    #[arg(long, value_name = "N")]
    pub max_pairs: Option<usize>,
    /// A text put before every sentence ("query: " for e5 models).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print one JSON object a line (one a file, then the averages).
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU reference implementation instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// Sequences per batch (for an artifact, at most its largest batch bucket).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Maximum tokens per sequence; longer inputs are truncated longest-first,
    /// as XTREME does.
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// Also score test-en.tsv with words substituted as RS-DA does.
    #[arg(long, value_enum)]
    pub perturb: Option<PerturbKind>,
    /// Random substitutions per pair.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub draws: usize,
    /// Seed of the substitutions (recorded in the report).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also keep, for each pair, the draw with the highest loss (for a
    /// similarity, the one furthest across the threshold).
    #[arg(long, value_enum)]
    pub attack: Option<AttackKind>,
    /// Synonym sets (JSON word -> neighbours); default: the paper's
    /// counter-fitted neighbours, shipped with xltc.
    #[arg(long, value_name = "JSON")]
    pub synonyms: Option<PathBuf>,
    /// Evaluate a baseline instead of a model.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineKind>,
    /// Predict with the smoothed classifier: the majority vote over N noise
    /// draws on the word embeddings (abstaining when the vote is too close;
    /// an abstention counts as wrong). A classifier only.
    #[arg(long, value_name = "N", help_heading = "Randomized smoothing")]
    pub smooth: Option<usize>,
    /// The noise's scale: standard deviation, or half-width for uniform.
    #[arg(long, help_heading = "Randomized smoothing")]
    pub sigma: Option<f64>,
    /// The noise's law.
    #[arg(
        long,
        value_enum,
        default_value = "gaussian",
        help_heading = "Randomized smoothing"
    )]
    pub noise: Law,
    /// Also certify each prediction: an L2 radius on the word embeddings
    /// within which it cannot change (N more draws; Gaussian noise only).
    #[arg(long, help_heading = "Randomized smoothing")]
    pub certify: bool,
    /// The significance of the abstention test and of the certificate.
    #[arg(long, default_value_t = 0.001, help_heading = "Randomized smoothing")]
    pub alpha: f64,
}

#[derive(Args)]
pub struct TrainArgs {
    /// A Hugging Face model folder with a sequence-classification head.
    #[arg(required_unless_present = "resume")]
    pub model: Option<PathBuf>,
    /// Training pairs: XTREME's three columns, or PAWS-X's header layout.
    #[arg(long, required_unless_present = "resume")]
    pub train: Option<PathBuf>,
    /// English development pairs, for model selection.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// The output folder: best/, last/, state/, log.jsonl, loss.svg.
    #[arg(short, long, value_name = "OUT", required_unless_present = "resume")]
    pub output: Option<PathBuf>,
    /// Continue the interrupted run in OUT from its last saved state; the
    /// model, data, settings and device are the ones recorded there, so
    /// none of them may be given again.
    #[arg(long, value_name = "OUT", conflicts_with_all = [
        "model", "train", "dev", "output", "labels", "epochs", "max_steps", "batch", "accum",
        "lr", "warmup", "weight_decay", "clip", "max_len", "seed", "eval_every", "cpu",
        "no_dropout", "method", "synonyms", "copies", "augment_seed", "ignore_case",
        "every_epoch", "keep_original", "write_augmented", "adv_eps", "adv_step", "adv_steps",
        "adv_norm", "adv_init", "adv_clean_weight", "parallel", "align_weight", "align_attack", "align_loss",
        "align_temperature", "code_switch",
        "noise", "sigma",
    ])]
    pub resume: Option<PathBuf>,
    /// Save the state (parameters, moments, position) every this many
    /// optimizer steps; default: --eval-every.
    #[arg(long)]
    pub save_every: Option<usize>,
    /// The labels, in the head's order (default and for now: the model's own).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule spans them).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Sequences a forward and backward.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Micro-batches an optimizer step.
    #[arg(long, default_value_t = 4)]
    pub accum: usize,
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Warm-up, in optimizer steps.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip gradients at this global norm.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Longest input, special tokens included; longer pairs are truncated
    /// longest-first.
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// English dev accuracy every this many optimizer steps.
    #[arg(long, default_value_t = 500)]
    pub eval_every: usize,
    /// Train on the CPU reference instead of the GPU (f64 sums, slow; the
    /// oracle the GPU is tested against).
    #[arg(long)]
    pub cpu: bool,
    /// Train without dropout (the recipe trains with the model's
    /// hidden_dropout_prob, attention_probs_dropout_prob and classifier_dropout).
    #[arg(long)]
    pub no_dropout: bool,
    /// The training method: the public recipe (vanilla), synonym-substituted
    /// copies of the data (rs-da), adversarial training on the word
    /// embeddings (adv), or noise on them (rs-rp).
    #[arg(long, value_enum, default_value = "vanilla")]
    pub method: MethodKind,
    /// rs-da: the synonym sets, JSON word -> [neighbours] (default: the
    /// shipped counter-fitted neighbours, the paper's).
    #[arg(long, help_heading = "RS-DA")]
    pub synonyms: Option<PathBuf>,
    /// rs-da: perturbed copies of each training pair (the paper: 10 for
    /// PAWS-X, 3 for XNLI).
    #[arg(long, help_heading = "RS-DA")]
    pub copies: Option<usize>,
    /// rs-da: the seed of the draws (default: --seed).
    #[arg(long, help_heading = "RS-DA")]
    pub augment_seed: Option<u64>,
    /// rs-da, beyond the paper: look words up lower-cased with punctuation
    /// set aside (kept in place on the substitute).
    #[arg(long, help_heading = "RS-DA")]
    pub ignore_case: bool,
    /// rs-da, beyond the paper: draw new copies every epoch.
    #[arg(long, help_heading = "RS-DA")]
    pub every_epoch: bool,
    /// rs-da, beyond the paper: keep each original pair beside its copies.
    #[arg(long, help_heading = "RS-DA")]
    pub keep_original: bool,
    /// rs-da: also write the augmented training set (first epoch's) to
    /// this TSV file (sentence1, sentence2, label).
    #[arg(long, value_name = "FILE", help_heading = "RS-DA")]
    pub write_augmented: Option<PathBuf>,
    /// adv: the radius of the perturbation's ball [default: 0.5].
    #[arg(long, help_heading = "Adversarial")]
    pub adv_eps: Option<f64>,
    /// adv: the size of an ascent step [default: 0.2].
    #[arg(long, help_heading = "Adversarial")]
    pub adv_step: Option<f64>,
    /// adv: ascent steps a micro-batch [default: 3].
    #[arg(long, help_heading = "Adversarial")]
    pub adv_steps: Option<usize>,
    /// adv: the ball's norm [default: l2-token].
    #[arg(long, value_enum, help_heading = "Adversarial")]
    pub adv_norm: Option<Norm>,
    /// adv: where the ascent starts [default: zero].
    #[arg(long, value_enum, help_heading = "Adversarial")]
    pub adv_init: Option<Start>,
    /// adv: the clean loss's weight (0: the perturbed loss only; 0.5: their
    /// mean) [default: 0.5].
    #[arg(long, help_heading = "Adversarial")]
    pub adv_clean_weight: Option<f64>,
    /// Parallel data: files of an English text and its translation a line
    /// (training side only), for --align-weight and --code-switch; with any
    /// method.
    #[arg(long, value_name = "FILE", num_args = 1.., help_heading = "Parallel data")]
    pub parallel: Vec<PathBuf>,
    /// The alignment term's weight: each micro-batch also takes --batch
    /// parallel lines, and the loss adds this times the mean 1 - cosine of
    /// the mean-pooled states of a sentence and its translation.
    #[arg(long, help_heading = "Parallel data")]
    pub align_weight: Option<f64>,
    /// What the alignment term measures [default: cosine]: cosine, the
    /// mean 1 - cosine of a sentence and its translation (pulls a pair
    /// together only); contrastive, symmetric InfoNCE over the batch's
    /// lines (each sentence nearer its own translation than the batch's
    /// others, at --align-temperature); symmetric-kl, on the head: the
    /// symmetric KL between the head's distributions for a training pair
    /// and for the same pair with its sentences replaced by translations
    /// from the parallel files (the micro-batch then takes --batch such
    /// pairs).
    #[arg(long, value_enum, help_heading = "Parallel data")]
    pub align_loss: Option<AlignLossKind>,
    /// The contrastive alignment term's temperature [default: 0.05].
    #[arg(long, help_heading = "Parallel data")]
    pub align_temperature: Option<f64>,
    /// With --method adv: attack the alignment term's English sentences
    /// first (the method's ball, step and steps, on the alignment loss, the
    /// English side only), so that it pulls an attacked sentence and its
    /// clean translation together.
    #[arg(long, help_heading = "Parallel data")]
    pub align_attack: bool,
    /// The chance that a training sentence found in the parallel files is
    /// replaced by a translation (code-switching; drawn once, from --seed).
    #[arg(long, help_heading = "Parallel data")]
    pub code_switch: Option<f64>,
    /// rs-rp: the noise's law [default: gaussian].
    #[arg(long, value_enum, help_heading = "RS-RP")]
    pub noise: Option<Law>,
    /// rs-rp: the noise's scale (standard deviation, or half-width for
    /// uniform), per element [default: 0.02].
    #[arg(long, help_heading = "RS-RP")]
    pub sigma: Option<f64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PerturbKind {
    /// Words replaced by a uniform draw from themselves and their synonyms.
    Synonyms,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AttackKind {
    /// The worst of the --draws random substitutions.
    #[value(name = "worst-of-k", alias = "worst-of-K")]
    WorstOfK,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BaselineKind {
    /// Jaccard overlap of the lower-cased word sets, one threshold from dev-en.
    WordOverlap,
}

#[derive(Args)]
pub struct ProfileArgs {
    /// A compiled model.xltc (the program of the smallest bucket that holds
    /// --batch x --seq), or a model folder (the fused program of exactly
    /// that shape, compiled now).
    pub model: PathBuf,
    /// Sequences in the batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens in each sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Profile training instead: the train step (the artifact's, from
    /// `xltc compile --training`, at its batch, else compiled now at
    /// --batch) and the optimizer step.
    #[arg(long)]
    pub training: bool,
    /// Profiled runs, each after a warm-up run; each dispatch's median is shown.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// How many of the slowest dispatches to list.
    #[arg(long, default_value_t = 10)]
    pub dispatches: usize,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A compiled .xltc artifact.
    pub artifact: PathBuf,
    /// List every kernel of every bucket with its dispatch count.
    #[arg(long)]
    pub kernels: bool,
    /// List every buffer of every bucket with its size and role.
    #[arg(long)]
    pub buffers: bool,
}

fn main() -> ExitCode {
    // Output piped into `head` and the like ends quietly when the reader
    // stops, as Unix tools do, instead of panicking on the closed pipe.
    // A file-size limit (ulimit -f) reached while writing a checkpoint is
    // an error like a full disk (EFBIG), reported with the file's name and
    // the last checkpoint kept, not a core dump.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Compile(args) => cli::compile::compile(args),
        Command::Inspect(args) => cli::inspect::inspect(args),
        Command::Profile(args) => cli::profile::profile(args),
        Command::Eval(args) => cli::eval::eval(args),
        Command::Train(args) => cli::train::train(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xltc: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
