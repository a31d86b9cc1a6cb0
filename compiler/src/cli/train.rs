//! `xltc train`: fine-tunes a sequence-pair classifier with the public
//! recipe, on the CPU reference for now. Every line of the data is checked
//! before the first step; checkpoints are Hugging Face model folders, each
//! written to a temporary folder and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::json;
use xltc::frontend::{Model, ModelOutput};
use xltc::plot;
use xltc::train::{encode, Example, Settings, StepRecord, Trainer};
use xltc_runtime::pairs::label_index;
use xltc_runtime::{PairFile, TextTokenizer};

use super::progress::Progress;
use crate::TrainArgs;

pub fn train(args: TrainArgs) -> Result<()> {
    if !args.cpu {
        bail!(
            "training on the GPU is not built yet (docs/training.md says what comes); \
             run with --cpu to train on the CPU reference"
        );
    }
    if args.batch == 0 || args.accum == 0 || args.eval_every == 0 {
        bail!("--batch, --accum and --eval-every must be at least 1");
    }
    let model = Model::load(&args.model)?;
    if model.output != ModelOutput::Classification {
        bail!(
            "{}: has no classification head; training one from an encoder is not built yet",
            args.model.display()
        );
    }
    let labels = model.config.labels.clone();
    if let Some(given) = &args.labels {
        if *given != labels {
            bail!(
                "--labels {} differ from the model's labels ({}); a new head is not built yet",
                given.join(","),
                labels.join(",")
            );
        }
    }
    let settings = Settings {
        epochs: args.epochs,
        max_steps: args.max_steps,
        batch: args.batch,
        accumulation: args.accum,
        lr: args.lr,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        clip: args.clip,
        max_len: args.max_len,
        seed: args.seed,
        eval_every: args.eval_every,
    };
    let tokenizer = TextTokenizer::from_json(
        &model.tokenizer_json,
        &model.origin,
        args.max_len.min(model.max_tokens()),
    )?;
    let train = read_examples(&args.train, &labels, &tokenizer)?;
    let dev = match &args.dev {
        Some(path) => Some(read_examples(path, &labels, &tokenizer)?),
        None => None,
    };
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let log_path = args.output.join("log.jsonl");
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    writeln!(
        log,
        "{}",
        json!({"settings": settings, "model": args.model, "train": args.train, "dev": args.dev, "labels": labels})
    )?;

    let mut trainer = Trainer::new(&model, settings.clone())?;
    let total = trainer.total_steps(train.len());
    eprintln!(
        "xltc: training {} on {} pairs for {total} optimizer steps on the CPU reference",
        model.name,
        train.len()
    );
    let mut progress = Progress::new("train", "steps");
    let mut records: Vec<StepRecord> = Vec::new();
    let mut evaluations: Vec<(usize, f64)> = Vec::new();
    let mut best = f64::NEG_INFINITY;
    'epochs: for epoch in 0..settings.epochs {
        let order = trainer.epoch_order(train.len(), epoch);
        for group in order.chunks(settings.batch * settings.accumulation) {
            if trainer.step >= total {
                break 'epochs;
            }
            let examples: Vec<&Example> = group.iter().map(|&i| &train[i]).collect();
            let record = trainer.train_step(&examples, epoch, total)?;
            let mut line = serde_json::to_value(&record)?;
            let last = trainer.step == total;
            if let Some(dev) = &dev {
                if trainer.step % settings.eval_every == 0 || last {
                    let accuracy = trainer.accuracy(dev)?;
                    line["dev_accuracy"] = json!(accuracy);
                    evaluations.push((trainer.step, accuracy));
                    // The public code keeps the checkpoint that strictly beats the best so far.
                    if accuracy > best {
                        best = accuracy;
                        save_model(&model, &trainer.params, &args.output.join("best"))?;
                    }
                }
            }
            writeln!(log, "{line}")?;
            records.push(record);
            progress.update(trainer.step, total, 1.0);
        }
    }
    save_model(&model, &trainer.params, &args.output.join("last"))?;
    let losses: Vec<(f64, f64)> = records.iter().map(|r| (r.step as f64, r.loss)).collect();
    let accuracies: Vec<(f64, f64)> = evaluations.iter().map(|&(s, a)| (s as f64, a)).collect();
    let svg = plot::curves(
        &format!("{}: training loss and English dev accuracy", model.name),
        "optimizer step",
        &[
            plot::Curve {
                label: "training loss",
                colour: "#c33",
                points: losses,
            },
            plot::Curve {
                label: "dev accuracy",
                colour: "#36c",
                points: accuracies,
            },
        ],
    );
    super::write_atomically(&args.output.join("loss.svg"), svg.as_bytes())?;
    let first = records.first().map_or(0.0, |r| r.loss);
    let final_loss = records.last().map_or(0.0, |r| r.loss);
    println!("trained {total} steps: loss {first:.4} -> {final_loss:.4}");
    if let Some(&(_, accuracy)) = evaluations.last() {
        println!(
            "dev accuracy: last {:.1}%, best {:.1}%",
            100.0 * accuracy,
            100.0 * best
        );
    }
    println!("checkpoints: {}", args.output.display());
    Ok(())
}

/// A pair file's examples with their labels as class numbers; a label the
/// model does not have names the file and line, before any training.
fn read_examples(
    path: &Path,
    labels: &[String],
    tokenizer: &TextTokenizer,
) -> Result<Vec<Example>> {
    let file = PairFile::read(path)?;
    let mut rows = Vec::new();
    for pair in &file.pairs {
        let Some(class) = label_index(labels, &pair.label) else {
            bail!(
                "{} line {}: label {:?} is not one of the model's labels ({})",
                path.display(),
                pair.line,
                pair.label,
                labels.join(", ")
            );
        };
        let origin = format!("{} line {}", path.display(), pair.line);
        rows.push((
            pair.sentence1.clone(),
            pair.sentence2.clone(),
            class as u32,
            origin,
        ));
    }
    Ok(encode(tokenizer, &rows)?)
}

/// A Hugging Face model folder with the trained parameters (the tensor names
/// of the checkpoint it came from), config.json and tokenizer.json, written
/// beside `folder` and renamed into place.
fn save_model(
    model: &Model,
    params: &[(String, Vec<usize>, Vec<f32>)],
    folder: &Path,
) -> Result<()> {
    let views: Vec<(String, TensorView)> = params
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(data))
                .expect("shape and data agree");
            (name.clone(), view)
        })
        .collect();
    // transformers reads a safetensors file only with format "pt" in its metadata.
    let metadata = std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let weights = safetensors::tensor::serialize(views, Some(metadata))?;
    let mut config: serde_json::Value = serde_json::from_str(&model.config_json)?;
    let labels = &model.config.labels;
    config["id2label"] = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    config["label2id"] = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    let parent = folder.parent().unwrap_or(Path::new("."));
    let temporary: PathBuf = parent.join(format!(
        ".{}.{}.tmp",
        folder
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let write = || -> Result<()> {
        std::fs::create_dir_all(&temporary)?;
        std::fs::write(temporary.join("model.safetensors"), &weights)?;
        std::fs::write(
            temporary.join("config.json"),
            serde_json::to_string_pretty(&config)?,
        )?;
        std::fs::write(temporary.join("tokenizer.json"), &model.tokenizer_json)?;
        if folder.exists() {
            std::fs::remove_dir_all(folder)?;
        }
        std::fs::rename(&temporary, folder)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&temporary);
        })
        .with_context(|| format!("cannot write the checkpoint {}", folder.display()))
}
