//! `xltc compile`: a model folder to a .xltc artifact, written atomically.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use xltc::codegen::CodegenOptions;
use xltc::compile::{compile as compile_model, CompileOptions};
use xltc::frontend::Model;

use crate::CompileArgs;

pub fn compile(args: CompileArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    if args.max_seq < 2 || args.max_seq > model.max_tokens() {
        bail!(
            "--max-seq {} must be between 2 and the {} positions this model allows",
            args.max_seq,
            model.max_tokens()
        );
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let options = CompileOptions {
        max_seq: args.max_seq,
        max_batch: args.batch,
        fuse: !args.no_fuse,
        codegen: CodegenOptions {
            max_binding_bytes: args.max_binding_bytes,
        },
    };
    let terminal = std::io::stderr().is_terminal();
    let artifact = compile_model(&model, &options, |done, total| {
        if terminal {
            eprint!("\rxltc: compiled {done}/{total} buckets");
        }
    })
    .with_context(|| format!("compiling {}", model.origin.display()))?;
    if terminal {
        eprintln!();
    }
    let bytes = artifact.to_bytes();
    super::write_atomically(&args.output, &bytes)?;
    let kernels: usize = artifact
        .manifest
        .buckets
        .iter()
        .map(|b| b.program.kernels.len())
        .sum();
    println!(
        "{}: {} buckets, {kernels} kernels, {}",
        args.output.display(),
        artifact.manifest.buckets.len(),
        super::human_bytes(bytes.len() as u64)
    );
    Ok(())
}
