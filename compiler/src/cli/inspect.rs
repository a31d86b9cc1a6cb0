//! `xltc inspect`: what an artifact holds, bucket by bucket.

use std::collections::BTreeMap;

use anyhow::Result;
use xltc::codegen::GemmKey;
use xltc::tune::describe;
use xltc_runtime::artifact::{Bucket, Training, Tuning};
use xltc_runtime::program::BufferRole;
use xltc_runtime::Program;

use super::human_bytes;
use crate::InspectArgs;

pub fn inspect(args: InspectArgs) -> Result<()> {
    let artifact = super::read_artifact(&args.artifact)?;
    let model = &artifact.manifest.model;
    println!(
        "{}: {} ({})",
        args.artifact.display(),
        model.name,
        model.architecture
    );
    match model.output {
        xltc_runtime::artifact::OutputKind::Classification => {
            println!("  output: labels {}", model.labels.join(", "))
        }
        xltc_runtime::artifact::OutputKind::SentenceEmbedding { normalize } => println!(
            "  output: sentence embedding (mean pooling{})",
            if normalize { ", L2-normalised" } else { "" }
        ),
    }
    println!(
        "  weights: {} (checksum verified)",
        human_bytes(artifact.weights.len() as u64)
    );
    for bucket in &artifact.manifest.buckets {
        print_bucket(bucket, &args);
    }
    match &artifact.manifest.training {
        Some(training) => print_training(training, &args),
        None => println!("  training: not compiled (xltc compile --training)"),
    }
    match &artifact.manifest.tuning {
        Some(tuning) => print_tuning(tuning, &args),
        None => println!("  tuning: none (xltc compile --tune): the default GEMM kernels"),
    }
    Ok(())
}

/// What `--tune` chose on which adapter; with --kernels, every GEMM's trials.
fn print_tuning(tuning: &Tuning, args: &InspectArgs) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for gemm in &tuning.gemms {
        match counts.iter_mut().find(|(k, _)| *k == gemm.kernel) {
            Some((_, n)) => *n += 1,
            None => counts.push((gemm.kernel.clone(), 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} on {k}")).collect();
    println!(
        "  tuning: {} GEMMs tuned on {}: {}",
        tuning.gemms.len(),
        tuning.adapter,
        counts.join(", ")
    );
    for trial in &tuning.fusions {
        let on = match trial.on.is_empty() {
            true => "neither".to_owned(),
            false => trial.on.join(" and "),
        };
        println!(
            "    fusions tuned (attention, linear_norm): {on} fused: {:.3} ms, error {:.1e}{}",
            trial.seconds * 1e3,
            trial.relative_error,
            if trial.chosen { "  <- chosen" } else { "" }
        );
    }
    if !args.kernels {
        return;
    }
    for gemm in &tuning.gemms {
        let key = GemmKey {
            m: gemm.shape[0],
            n: gemm.shape[1],
            k: gemm.shape[2],
            x_transposed: gemm.x_transposed,
            w_transposed: gemm.w_transposed,
            bias: gemm.bias,
            gelu: gemm.gelu,
        };
        let trials: Vec<String> = gemm
            .trials
            .iter()
            .map(|t| {
                format!(
                    "{} {:.3} ms (error {:.1e})",
                    t.kernel,
                    t.seconds * 1e3,
                    t.relative_error
                )
            })
            .collect();
        println!(
            "    {}: {} [{}]",
            describe(key),
            gemm.kernel,
            trials.join(", ")
        );
    }
}

/// The number and total bytes of `p`'s buffers whose role `keep` takes.
fn bytes_of(p: &Program, keep: fn(&BufferRole) -> bool) -> (usize, u64) {
    let chosen = p.buffers.iter().filter(|b| keep(&b.role));
    chosen.fold((0, 0), |(n, sum), b| (n + 1, sum + b.bytes))
}

/// What a program holds for one run only: activations (planned) and inputs.
fn working_bytes(p: &Program) -> ((usize, u64), u64) {
    let activations = bytes_of(p, |r| matches!(r, BufferRole::Activation));
    (
        activations,
        bytes_of(p, |r| matches!(r, BufferRole::Input(_))).1,
    )
}

/// Training's programs: what every program shares (parameters, their
/// gradients and moments), and for each bucket the train step's and the
/// dev forward's own memory; a step's peak is the shared memory plus the
/// step's and the optimizer's own.
fn print_training(training: &Training, args: &InspectArgs) {
    let elements: usize = training
        .parameters
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    let optimizer = &training.optimizer;
    let weights = bytes_of(optimizer, |r| matches!(r, BufferRole::Weight(_))).1;
    let gradients = bytes_of(optimizer, |r| matches!(r, BufferRole::Gradient(_))).1;
    let moments = bytes_of(optimizer, |r| matches!(r, BufferRole::Moment { .. })).1;
    let shared = weights + gradients + moments;
    let ((_, optimizer_activations), optimizer_inputs) = working_bytes(optimizer);
    let optimizer_own = optimizer_activations + optimizer_inputs;
    println!(
        "  training: {} parameters ({elements} elements), dropout {}, weight decay {}",
        training.parameters.len(),
        if training.dropout { "on" } else { "off" },
        training.weight_decay,
    );
    println!(
        "    shared by every program: parameters {}, gradients {}, AdamW moments {} \
         (total {})",
        human_bytes(weights),
        human_bytes(gradients),
        human_bytes(moments),
        human_bytes(shared),
    );
    println!(
        "    optimizer step: {} kernels, {} dispatches, own buffers {}",
        optimizer.kernels.len(),
        optimizer.dispatches.len(),
        human_bytes(optimizer_own),
    );
    print_details(optimizer, args);
    for (step, forward) in training.steps.iter().zip(&training.forwards) {
        let p = &step.program;
        let ((count, activations), inputs) = working_bytes(p);
        println!(
            "    train step batch {} x seq {}: {} kernels, {} dispatches; activations {} in \
             {count} (planned), inputs {}; peak training memory {}; {:.2} MFLOP per sequence",
            p.batch,
            p.seq,
            p.kernels.len(),
            p.dispatches.len(),
            human_bytes(activations),
            human_bytes(inputs),
            human_bytes(shared + activations + inputs + optimizer_own),
            step.flops as f64 / p.batch as f64 / 1e6,
        );
        print_details(p, args);
        let f = &forward.program;
        let ((_, activations), inputs) = working_bytes(f);
        println!(
            "      dev forward batch {} x seq {}: {} dispatches, activations {}, inputs {}",
            f.batch,
            f.seq,
            f.dispatches.len(),
            human_bytes(activations),
            human_bytes(inputs),
        );
        print_details(f, args);
    }
}

fn print_bucket(bucket: &Bucket, args: &InspectArgs) {
    let p = &bucket.program;
    let (weight_count, weight_bytes) = bytes_of(p, |r| matches!(r, BufferRole::Weight { .. }));
    let ((activation_count, activation_bytes), input_bytes) = working_bytes(p);
    let flops_per_sequence = bucket.flops as f64 / p.batch as f64;
    println!(
        "  bucket batch {} x seq {}: {} kernels, {} dispatches; buffers: weights {} in {}, \
         activations {} in {} (planned), inputs {}; peak memory {}; {:.2} MFLOP per sequence",
        p.batch,
        p.seq,
        p.kernels.len(),
        p.dispatches.len(),
        human_bytes(weight_bytes),
        weight_count,
        human_bytes(activation_bytes),
        activation_count,
        human_bytes(input_bytes),
        human_bytes(weight_bytes + activation_bytes + input_bytes),
        flops_per_sequence / 1e6,
    );
    print_details(p, args);
}

/// Every kernel and its dispatch count, every buffer with its size and
/// role, where asked.
fn print_details(p: &Program, args: &InspectArgs) {
    if args.kernels {
        let mut uses: BTreeMap<usize, usize> = BTreeMap::new();
        for d in &p.dispatches {
            *uses.entry(d.kernel).or_default() += 1;
        }
        for (index, kernel) in p.kernels.iter().enumerate() {
            println!(
                "    kernel {:>3} x{:<3} {}",
                index, uses[&index], kernel.name
            );
        }
    }
    if args.buffers {
        for (index, buffer) in p.buffers.iter().enumerate() {
            let (role, packed) = match &buffer.role {
                BufferRole::Input(names) if names.len() > 1 => {
                    ("inputs".to_owned(), names.join(" + "))
                }
                BufferRole::Input(_) => ("input".to_owned(), String::new()),
                BufferRole::Weight(slices) if slices.len() > 1 => {
                    let names: Vec<&str> = slices.iter().map(|s| s.name.as_str()).collect();
                    (
                        format!("weight ({} packed)", slices.len()),
                        names.join(" + "),
                    )
                }
                BufferRole::Weight(_) => ("weight".to_owned(), String::new()),
                BufferRole::Activation => ("activation".to_owned(), String::new()),
                // Their buffers' names say whose.
                BufferRole::Gradient(_) => ("gradient".to_owned(), String::new()),
                BufferRole::Moment { order, .. } => (format!("moment {order}"), String::new()),
            };
            let packed = if packed.is_empty() {
                packed
            } else {
                format!(": {packed}")
            };
            println!(
                "    buffer {index:>3} {:>10}  {role:<18} {}{packed}",
                human_bytes(buffer.bytes),
                buffer.name
            );
        }
    }
}
