//! `xltc compile`: a model folder to a .xltc artifact, written atomically.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use xltc::codegen::{CodegenOptions, GemmKernel};
use xltc::compile::{bucket_graphs, compile as compile_model, CompileOptions};
use xltc::frontend::{Model, ModelOutput};
use xltc::passes::Fusions;
use xltc::reference::AdamW;
use xltc::train::programs::compile_training;
use xltc::tune;
use xltc_runtime::artifact::Tuning;
use xltc_runtime::Gpu;

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
    let mut options = CompileOptions {
        max_seq: args.max_seq,
        max_batch: args.batch,
        fusions: match (args.no_fuse, args.fuse_all) {
            (true, _) => Fusions::NONE,
            (_, true) => Fusions::ALL,
            _ => Fusions::default(),
        },
        codegen: CodegenOptions {
            max_binding_bytes: args.max_binding_bytes,
            gemm: match (args.tiled_gemm, args.subgroup_gemm) {
                (true, _) => GemmKernel::Tiled,
                (_, true) => GemmKernel::LanesSubgroup,
                _ => GemmKernel::Lanes,
            },
            ..CodegenOptions::default()
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
    // The fusions are tuned only where the user left them to xltc.
    let tune_fusions = !args.no_fuse && !args.fuse_all;
    let tuning = match args.tune {
        true => Some(tune_kernels(&model, &mut options, tune_fusions, terminal)?),
        false => None,
    };
    let mut artifact = compile_model(&model, &options, |done, total| {
        if terminal {
            eprint!("\rxltc: compiled {done}/{total} buckets");
        }
    })
    .with_context(|| format!("compiling {}", model.origin.display()))?;
    if terminal {
        eprintln!();
    }
    artifact.manifest.tuning = tuning;
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
            &options.codegen,
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
    let tuned = match &artifact.manifest.tuning {
        Some(t) => format!(", {} GEMMs tuned", t.gemms.len()),
        None => String::new(),
    };
    println!(
        "{}: {} buckets, {kernels} kernels{training}{tuned}, {}",
        args.output.display(),
        artifact.manifest.buckets.len(),
        super::human_bytes(bytes.len() as u64)
    );
    Ok(())
}

/// `--tune` on this machine's adapter: the fusions whose worth depends on
/// it (where `fusions`), then both GEMM kernels for every GEMM of the
/// buckets; the choices go into `options`, the record into the artifact.
fn tune_kernels(
    model: &Model,
    options: &mut CompileOptions,
    fusions: bool,
    terminal: bool,
) -> Result<Tuning> {
    let gpu = Gpu::new_blocking()?;
    eprintln!("xltc: tuning on {}", gpu.adapter);
    let mut fusion_trials = Vec::new();
    if fusions {
        let (chosen, trials) = tune::tune_fusions(
            &gpu,
            model,
            options.fusions,
            options.max_seq,
            &options.codegen,
        )?;
        options.fusions = chosen;
        fusion_trials = trials;
    }
    let keys = tune::gemms(&bucket_graphs(model, options));
    let (choices, tuning) = tune::tune(&gpu, &keys, &options.codegen, |done, total| {
        if terminal {
            eprint!("\rxltc: tuned {done}/{total} GEMMs");
        }
    })?;
    if terminal {
        eprintln!();
    }
    options.codegen.tuned_gemms = choices;
    Ok(Tuning {
        fusions: fusion_trials,
        ..tuning
    })
}
