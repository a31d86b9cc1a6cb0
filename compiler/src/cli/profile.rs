//! `xltc profile`: where one run of a program spends its time, by kernel
//! family and by dispatch, with GFLOP/s and the bytes the dispatch binds a
//! second. Every speed change starts from it.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use xltc::codegen::{lower, optimizer_input, CodegenOptions, OPTIMIZER_INPUT};
use xltc::frontend::Model;
use xltc::passes::{fuse_with, Fusions};
use xltc::reference::AdamW;
use xltc::train::programs;
use xltc_runtime::artifact::Bucket;
use xltc_runtime::profile::Profile;
use xltc_runtime::program::BufferRole;
use xltc_runtime::{Encoding, Executor, Gpu, ModelInputs, Program, TrainingInputs, WeightBuffers};

use crate::ProfileArgs;

pub fn profile(args: ProfileArgs) -> Result<()> {
    if args.batch == 0 || args.seq < 2 || args.runs == 0 {
        bail!("--batch and --runs must be at least 1, --seq at least 2");
    }
    let (model, manifest) = super::open_model(&args.model)?;
    if args.seq > model.max_tokens() {
        bail!(
            "--seq {} is more than this model's {} positions allow",
            args.seq,
            model.max_tokens()
        );
    }
    let gpu = Gpu::new_blocking()?;
    println!("adapter: {}", gpu.adapter);
    // A model folder is compiled for this adapter, as `xltc run` does.
    let options = CodegenOptions::for_adapter(&gpu.adapter);
    let weights = model.checkpoint();
    let weight = |name: &str| weights.get(name).map(|t| &t.data[..]);
    let shared = WeightBuffers::default();
    let load = |program: Program| {
        pollster::block_on(Executor::load_sharing(&gpu, program, &shared, weight))
            .context("cannot load the program on the GPU")
    };
    let origin = args.model.display();
    if !args.training {
        let bucket = match &manifest {
            Some(m) => smallest(&m.buckets, args.batch, args.seq).with_context(|| {
                format!("{origin}: no bucket holds {} x {}", args.batch, args.seq)
            })?,
            None => {
                let graph = fuse_with(&model.graph(args.batch, args.seq), Fusions::default());
                let program = lower(&graph, &options)?.program;
                Bucket {
                    program,
                    flops: graph.flops(),
                }
            }
        };
        let executor = load(bucket.program)?;
        let profile = on_synthetic_inputs(&gpu, &model, &executor, args.runs)?;
        report(
            &format!("{origin}: forward"),
            executor.program(),
            &profile,
            &args,
        );
        return Ok(());
    }
    let stored = manifest.and_then(|m| m.training);
    let rows = stored
        .as_ref()
        .and_then(|t| t.steps.first())
        .map_or(args.batch, |b| b.program.batch);
    let seq = programs::sequence_bucket(args.seq, model.max_tokens());
    let step = match stored.as_ref().and_then(|t| smallest(&t.steps, rows, seq)) {
        Some(bucket) => bucket.program,
        None => programs::train_step(&model, rows, seq, true, &options)?.program,
    };
    let parameters = programs::parameter_shapes(&model)?;
    let adam = AdamW::default();
    let optimizer = match &stored {
        Some(t) => t.optimizer.clone(),
        None => programs::optimizer(&parameters, &adam, &options)?,
    };
    let train_step = load(step)?;
    let optimizer = load(optimizer)?;
    let profile = on_synthetic_inputs(&gpu, &model, &train_step, args.runs)?;
    report(
        &format!("{origin}: train step"),
        train_step.program(),
        &profile,
        &args,
    );
    let scalars = optimizer_input(&adam, 1, 2e-5, 1.0, 1.0);
    let input = |n: &str| (n == OPTIMIZER_INPUT).then(|| bytemuck::cast_slice(&scalars[..]));
    let profile = repeat(args.runs, || {
        pollster::block_on(optimizer.run_named(&gpu, input))?;
        Ok(pollster::block_on(optimizer.profile_dispatches(&gpu))?)
    })?;
    report(
        &format!("{origin}: optimizer step"),
        optimizer.program(),
        &profile,
        &args,
    );
    Ok(())
}

/// `executor`'s profile on [`synthetic_inputs`], each dispatch's median
/// over `runs` profiled runs, each after a warm-up run.
fn on_synthetic_inputs(
    gpu: &Gpu,
    model: &Model,
    executor: &Executor,
    runs: usize,
) -> Result<Profile> {
    let (inputs, training) = synthetic_inputs(model, executor.program());
    repeat(runs, || {
        pollster::block_on(executor.run_training(gpu, &inputs, &training))?;
        Ok(pollster::block_on(
            executor.profile(gpu, &inputs, &training),
        )?)
    })
}

/// The smallest of `buckets` that holds `batch` x `seq`.
fn smallest(buckets: &[Bucket], batch: usize, seq: usize) -> Option<Bucket> {
    buckets
        .iter()
        .filter(|b| b.program.batch >= batch && b.program.seq >= seq)
        .min_by_key(|b| b.program.batch * b.program.seq)
        .cloned()
}

/// Each dispatch's median over `runs` profiles (each after a warm-up run).
fn repeat(runs: usize, mut once: impl FnMut() -> Result<Profile>) -> Result<Profile> {
    let profiles: Vec<Profile> = (0..runs).map(|_| once()).collect::<Result<_>>()?;
    let clock = profiles[0].clock;
    let seconds = (0..profiles[0].seconds.len())
        .map(|d| {
            let mut times: Vec<f64> = profiles.iter().map(|p| p.seconds[d]).collect();
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    Ok(Profile { clock, seconds })
}

/// Full sequences of ids cycling through the vocabulary past the first
/// 1000 ids (clear of special tokens), the second half type 1; labels
/// alternating; no perturbation.
fn synthetic_inputs(model: &Model, program: &Program) -> (ModelInputs, TrainingInputs) {
    let (batch, seq) = (program.batch, program.seq);
    let vocab = model.config.vocab as u32;
    let first = 1000.min(vocab / 2);
    let encodings: Vec<Encoding> = (0..batch)
        .map(|row| Encoding {
            ids: (0..seq)
                .map(|t| first + ((row * seq + t) * 7919) as u32 % (vocab - first))
                .collect(),
            type_ids: (0..seq).map(|t| u32::from(t >= seq / 2)).collect(),
        })
        .collect();
    let config = &model.config;
    let inputs = ModelInputs::pad(
        &encodings,
        seq,
        config.pad_token_id,
        model.position_scheme(),
    );
    let training = TrainingInputs {
        labels: (0..batch)
            .map(|r| (r % config.labels.len().max(1)) as u32)
            .collect(),
        example_mask: vec![1.0; batch],
        word_embedding_delta: vec![0.0; batch * seq * config.hidden],
        dropout_key: vec![7, 0, 1, 0],
    };
    (inputs, training)
}

/// The family of a kernel: its name before the constants.
fn family(name: &str) -> &str {
    name.split('[').next().unwrap_or(name)
}

/// Kernels that bind a whole table and read only the rows of some ids:
/// the bytes they bind say nothing of what they move.
fn reads_rows_of_tables(family: &str) -> bool {
    matches!(family, "gather" | "embeddings" | "gather_backward")
}

/// Bytes of every buffer `dispatch` binds.
fn bound_bytes(program: &Program, index: usize) -> u64 {
    let dispatch = &program.dispatches[index];
    let mut buffers: Vec<usize> = dispatch.bindings.iter().map(|b| b.buffer).collect();
    buffers.sort();
    buffers.dedup();
    buffers.iter().map(|&b| program.buffers[b].bytes).sum()
}

fn rate(amount: f64, seconds: f64) -> String {
    if amount > 0.0 && seconds > 0.0 {
        format!("{:.2}", amount / seconds / 1e9)
    } else {
        "-".to_owned()
    }
}

fn report(title: &str, program: &Program, profile: &Profile, args: &crate::ProfileArgs) {
    let total: f64 = profile.seconds.iter().sum();
    println!();
    let shape = if program.batch > 0 {
        format!(", batch {} x seq {}", program.batch, program.seq)
    } else {
        String::new()
    };
    println!(
        "{title}{shape}: {} dispatches, {:.3} ms ({})",
        program.dispatches.len(),
        total * 1e3,
        profile.clock.describe()
    );
    // (dispatches, seconds, flops, bound bytes) by family.
    let mut families: BTreeMap<&str, (usize, f64, f64, f64)> = BTreeMap::new();
    for (index, (dispatch, &seconds)) in program.dispatches.iter().zip(&profile.seconds).enumerate()
    {
        let name = family(&program.kernels[dispatch.kernel].name);
        let entry = families.entry(name).or_default();
        entry.0 += 1;
        entry.1 += seconds;
        entry.2 += dispatch.flops as f64;
        if !reads_rows_of_tables(name) {
            entry.3 += bound_bytes(program, index) as f64;
        }
    }
    let mut rows: Vec<_> = families.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    println!();
    println!("| kernel family | dispatches | ms | share | GFLOP/s | bound GB/s |");
    println!("|---|---|---|---|---|---|");
    for (name, (count, seconds, flops, bytes)) in rows {
        println!(
            "| {name} | {count} | {:.3} | {:.1}% | {} | {} |",
            seconds * 1e3,
            100.0 * seconds / total.max(1e-12),
            rate(flops, seconds),
            rate(bytes, seconds),
        );
    }
    let mut order: Vec<usize> = (0..program.dispatches.len()).collect();
    order.sort_by(|&a, &b| profile.seconds[b].total_cmp(&profile.seconds[a]));
    let shown = args.dispatches.min(order.len());
    println!();
    println!("{shown} slowest dispatches:");
    for index in order.into_iter().take(shown) {
        let dispatch = &program.dispatches[index];
        let name = &program.kernels[dispatch.kernel].name;
        let seconds = profile.seconds[index];
        let bytes = if reads_rows_of_tables(family(name)) {
            0.0
        } else {
            bound_bytes(program, index) as f64
        };
        let output = dispatch
            .bindings
            .last()
            .map(|b| program.buffers[b.buffer].name.as_str())
            .unwrap_or("");
        let output = match program.buffers.iter().find(|b| b.name == output) {
            Some(b) if matches!(b.role, BufferRole::Activation) => String::new(),
            _ => format!(" -> {output}"),
        };
        println!(
            "  #{index:<5} {:>9.3} ms {:>5.1}%  {:>8} GFLOP/s {:>8} GB/s  {name}{output}",
            seconds * 1e3,
            100.0 * seconds / total.max(1e-12),
            rate(dispatch.flops as f64, seconds),
            rate(bytes, seconds),
        );
    }
}
