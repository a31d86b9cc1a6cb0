//! The `xltc` command.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    #[arg(long)]
    pub no_fuse: bool,
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
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Compile(args) => cli::compile::compile(args),
        Command::Inspect(args) => cli::inspect::inspect(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xltc: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
