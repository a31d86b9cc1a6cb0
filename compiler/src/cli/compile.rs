//! `xltc compile`: a model folder to a .xltc artifact, written atomically.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use xltc::codegen::CodegenOptions;
use xltc::compile::{compile as compile_model, CompileOptions};
use xltc::frontend::{Model, ModelOutput};
use xltc::reference::AdamW;
use xltc::train::programs::compile_training;

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
            lane_gemm: !args.tiled_gemm,
        },
    };
    if args.training && model.output != ModelOutput::Classification {
        bail!(
            "--training needs a sequence classifier; {} has no classification head \
             (`xltc train` gives an encoder a new one)",
            model.origin.display()
        );
    }
    if args.train_batch == 0 {
        bail!("--train-batch must be at least 1");
    }
    let terminal = std::io::stderr().is_terminal();
    let mut artifact = compile_model(&model, &options, |done, total| {
        if terminal {
            eprint!("\rxltc: compiled {done}/{total} buckets");
        }
    })
    .with_context(|| format!("compiling {}", model.origin.display()))?;
    if terminal {
        eprintln!();
    }
    if args.training {
        let adam = AdamW {
            weight_decay: args.weight_decay,
            ..AdamW::default()
        };
        let training = compile_training(
            &model,
            args.train_batch,
            args.max_seq,
            !args.no_dropout,
            &adam,
            |done, total| {
                if terminal {
                    eprint!("\rxltc: compiled {done}/{total} training programs");
                }
            },
        )
        .with_context(|| format!("compiling training for {}", model.origin.display()))?;
        if terminal {
            eprintln!();
        }
        artifact.manifest.training = Some(training);
    }
    let bytes = artifact.to_bytes();
    super::write_atomically(&args.output, &bytes)?;
    let kernels: usize = artifact
        .manifest
        .buckets
        .iter()
        .map(|b| b.program.kernels.len())
        .sum();
    let training = match &artifact.manifest.training {
        Some(t) => format!(", training: {} train-step buckets", t.steps.len()),
        None => String::new(),
    };
    println!(
        "{}: {} buckets, {kernels} kernels{training}, {}",
        args.output.display(),
        artifact.manifest.buckets.len(),
        super::human_bytes(bytes.len() as u64)
    );
    Ok(())
}
