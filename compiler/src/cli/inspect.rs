//! `xltc inspect`: what an artifact holds, bucket by bucket.

use std::collections::BTreeMap;

use anyhow::Result;
use xltc_runtime::artifact::Bucket;
use xltc_runtime::program::BufferRole;

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
    Ok(())
}

fn print_bucket(bucket: &Bucket, args: &InspectArgs) {
    let p = &bucket.program;
    let bytes_of = |keep: fn(&BufferRole) -> bool| -> (usize, u64) {
        let chosen = p.buffers.iter().filter(|b| keep(&b.role));
        chosen.fold((0, 0), |(n, sum), b| (n + 1, sum + b.bytes))
    };
    let (weight_count, weight_bytes) = bytes_of(|r| matches!(r, BufferRole::Weight { .. }));
    let (activation_count, activation_bytes) = bytes_of(|r| matches!(r, BufferRole::Activation));
    let (_, input_bytes) = bytes_of(|r| matches!(r, BufferRole::Input(_)));
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
                BufferRole::Gradient(of) => ("gradient".to_owned(), of.clone()),
                BufferRole::Moment { of, order } => (format!("moment {order}"), of.clone()),
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
