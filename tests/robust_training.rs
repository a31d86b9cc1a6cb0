//! The robust training methods (PAPER.md) on the tiny fixtures: RS-DA's
//! augmented data follow the synonym rule and train; adversarial training's
//! ascent raises the loss and stays in its ball, on the CPU reference and
//! on the GPU alike; RS-RP trains on noisy embeddings; every run records
//! its method in log.jsonl and in its checkpoints' config.

mod common;

use std::path::{Path, PathBuf};

use xltc::frontend::Model;
use xltc::ir::AlignmentLoss;
use xltc::train::method::{Adversarial, Method, Norm, Start};
use xltc::train::{AscentRecord, Example, Settings, Trainer};
use xltc_runtime::Encoding;

use common::{fixtures, model_dir};

fn xltc(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// `xltc train` of the tiny XLM-R on the small yes/no task (label 1 when
/// the second sentence starts with "yes") into `out`: batch 8, no
/// accumulation, lr 1e-3, no dropout, `extra` flags; panics on failure.
fn train(out: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let data = fixtures().join("train");
    let mut args: Vec<String> = vec![
        "train".into(),
        path(&model_dir("tiny-xlmr")),
        "--train".into(),
        path(&data.join("train.tsv")),
        "--dev".into(),
        path(&data.join("dev.tsv")),
        "-o".into(),
        path(out),
    ];
    let flags = [
        "--batch",
        "8",
        "--accum",
        "1",
        "--lr",
        "1e-3",
        "--no-dropout",
    ];
    args.extend(flags.iter().chain(extra).map(|s| s.to_string()));
    let output = xltc(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The mean loss of the first and of the last `n` steps of a log.
fn loss_fall(log: &[serde_json::Value], n: usize) -> (f64, f64) {
    let losses: Vec<f64> = log
        .iter()
        .filter_map(|l| l.get("loss").and_then(|v| v.as_f64()))
        .collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..n]), mean(&losses[losses.len() - n..]))
}

/// The method a checkpoint's config records.
fn recorded_method(folder: &Path) -> serde_json::Value {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    config["xltc_training"]["method"]["method"].clone()
}

/// RS-DA from the command line with a small synonym file: the augmented
/// set written by --write-augmented holds two copies of every pair in the
/// file's order, each token kept or replaced by one of its synonyms and the
/// label kept; the run learns the task and records its method.
#[test]
fn rs_da_writes_copies_by_the_rule_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let synonyms = dir.path().join("synonyms.json");
    std::fs::write(
        &synonyms,
        r#"{"water": ["river", "rain"], "stone": ["rock"], "cat": [], "Yes": ["no"]}"#,
    )
    .unwrap();
    let augmented = dir.path().join("augmented.tsv");
    let out = dir.path().join("run");
    let log = train(
        &out,
        &[
            "--epochs",
            "5",
            "--eval-every",
            "8",
            "--method",
            "rs-da",
            "--copies",
            "2",
            "--synonyms",
            &path(&synonyms),
            "--write-augmented",
            &path(&augmented),
        ],
    );
    let original = std::fs::read_to_string(fixtures().join("train/train.tsv")).unwrap();
    let copies = std::fs::read_to_string(&augmented).unwrap();
    let (original, copies): (Vec<&str>, Vec<&str>) =
        (original.lines().collect(), copies.lines().collect());
    assert_eq!(copies.len(), 2 * original.len());
    fn options(word: &str) -> Vec<&str> {
        match word {
            "water" => vec!["water", "river", "rain"],
            "stone" => vec!["stone", "rock"],
            w => vec![w],
        }
    }
    let mut changed = 0;
    for (i, copy) in copies.iter().enumerate() {
        let (from, to): (Vec<&str>, Vec<&str>) = (
            original[i / 2].split('\t').collect(),
            copy.split('\t').collect(),
        );
        assert_eq!(from[2], to[2], "line {i}: the label changed");
        for column in 0..2 {
            let (a, b): (Vec<&str>, Vec<&str>) = (
                from[column].split(' ').collect(),
                to[column].split(' ').collect(),
            );
            assert_eq!(a.len(), b.len(), "line {i}: the token count changed");
            for (x, y) in a.iter().zip(&b) {
                assert!(options(x).contains(y), "line {i}: {x} -> {y}");
                changed += usize::from(x != y);
            }
        }
    }
    assert!(changed > 20, "only {changed} substitutions");
    let steps: Vec<&serde_json::Value> = log.iter().filter(|l| l.get("step").is_some()).collect();
    assert_eq!(steps.len(), 80, "128 copies, batch 8, 5 epochs");
    assert_eq!(log[0]["settings"]["method"]["method"], "rs-da");
    assert_eq!(log[0]["settings"]["method"]["copies"], 2);
    let (early, late) = loss_fall(&log, 8);
    assert!(late < 0.3 * early, "loss {early} -> {late}");
    assert_eq!(recorded_method(&out.join("last")), "rs-da");
}

/// A flag of another method, and settings out of range, are refused
/// before anything is written.
#[test]
fn method_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, message) in [
        (
            vec!["--method", "rs-rp", "--adv-eps", "1"],
            "--adv-eps is a setting of --method adv",
        ),
        (
            vec!["--copies", "3"],
            "--copies is a setting of --method rs-da",
        ),
        (
            vec!["--method", "adv", "--sigma", "1"],
            "--sigma is a setting of --method rs-rp",
        ),
        (
            vec!["--method", "adv", "--adv-eps=-1"],
            "--adv-eps must be a positive number",
        ),
        (
            vec!["--method", "adv", "--adv-clean-weight", "1"],
            "--adv-clean-weight must be in [0, 1)",
        ),
        (
            vec!["--method", "rs-da", "--copies", "0"],
            "--copies must be at least 1",
        ),
    ] {
        refused(dir.path(), &flags, message);
    }
}

/// `xltc train` of the tiny XLM-R with `flags` fails, saying `message`,
/// and writes nothing.
fn refused(dir: &Path, flags: &[&str], message: &str) {
    let out = dir.join("refused");
    let mut args: Vec<String> = vec![
        "train".into(),
        path(&model_dir("tiny-xlmr")),
        "--train".into(),
        path(&fixtures().join("train/train.tsv")),
        "-o".into(),
        path(&out),
        "--cpu".into(),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let output = xltc(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{flags:?} was accepted");
    assert!(stderr.contains(message), "{flags:?}: {stderr}");
    assert!(!out.exists(), "{flags:?} wrote {}", out.display());
}

/// One optimizer step of adversarial training with `adv`'s settings (two
/// micro-batches of four), on the GPU or the CPU reference.
fn ascent(model: &Model, adv: &Adversarial, on_gpu: bool) -> AscentRecord {
    let settings = Settings {
        batch: 4,
        accumulation: 2,
        lr: 1e-3,
        // Without dropout: the CPU reference and the GPU pad batches
        // differently, so their dropout masks differ.
        dropout: false,
        method: Method::Adv(adv.clone()),
        ..Settings::default()
    };
    let mut trainer = if on_gpu {
        Trainer::on_gpu(model, settings).unwrap()
    } else {
        Trainer::new(model, settings).unwrap()
    };
    let examples = common::training_examples();
    let group: Vec<&Example> = examples.iter().collect();
    let record = trainer.train_step(&group, 0, 10).unwrap();
    record
        .ascent
        .expect("adversarial training records its ascent")
}

/// Projected gradient ascent on the word embeddings raises the loss above
/// the clean loss it starts from and keeps the perturbation within its
/// ball, in each norm, from zero and from a random start; the GPU's ascent
/// is the reference's (losses within 1e-4 relative: the perturbation
/// follows normalised gradients, so f32 rounding does not compound).
#[test]
fn adversarial_ascent_raises_the_loss_within_the_ball() {
    let model = Model::load(&model_dir("tiny-xlmr")).unwrap();
    for (norm, eps, step) in [
        (Norm::L2Token, 1.0, 0.5),
        (Norm::L2Seq, 3.0, 1.5),
        (Norm::Linf, 0.05, 0.02),
    ] {
        for init in [Start::Zero, Start::Random] {
            let adv = Adversarial {
                eps,
                step,
                steps: 3,
                norm,
                init,
                clean_weight: 0.0,
            };
            let cpu = ascent(&model, &adv, false);
            let gpu = ascent(&model, &adv, true);
            for (device, record) in [("cpu", &cpu), ("gpu", &gpu)] {
                assert!(
                    record.perturbed_loss > record.start_loss,
                    "{device} {norm:?} {init:?}: {record:?}"
                );
                assert!(
                    record.largest_norm <= eps * (1.0 + 1e-6),
                    "{device} {norm:?} {init:?}: {record:?}"
                );
                assert!(
                    record.largest_norm > 0.5 * eps,
                    "{device} {norm:?} {init:?}: the ascent barely moved: {record:?}"
                );
            }
            let what = |loss: &str| format!("{norm:?} {init:?}: {loss} loss");
            assert_close(&what("start"), cpu.start_loss, gpu.start_loss);
            assert_close(&what("perturbed"), cpu.perturbed_loss, gpu.perturbed_loss);
            eprintln!("{norm:?} {init:?}: cpu {cpu:?} gpu {gpu:?}");
        }
    }
}

/// Adversarial training (clean and perturbed losses mixed) and RS-RP
/// (Gaussian noise on the word embeddings) from the command line, on the
/// GPU, with radii small beside the tiny model's word embeddings (rows of
/// norm about 0.12: 36 values of standard deviation 0.02; a ball of 0.03
/// already keeps it from learning the task in 80 steps): each learns the task, logs what it did, and records its method in
/// log.jsonl and in the checkpoints; the same seed gives the same weights.
#[test]
fn adversarial_and_noise_training_learn_and_record_their_method() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<&str>); 2] = [
        (
            "adv",
            vec![
                "--method",
                "adv",
                "--adv-eps",
                "0.01",
                "--adv-step",
                "0.005",
                "--adv-steps",
                "2",
            ],
        ),
        ("rs-rp", vec!["--method", "rs-rp", "--sigma", "0.003"]),
    ];
    for (name, flags) in cases {
        let out = dir.path().join(name);
        let mut extra = vec!["--epochs", "10", "--eval-every", "16"];
        extra.extend(&flags);
        let log = train(&out, &extra);
        assert_eq!(log[0]["settings"]["method"]["method"], name);
        let (early, late) = loss_fall(&log, 8);
        eprintln!("{name}: loss {early} -> {late}");
        assert!(late < 0.5 * early, "{name}: loss {early} -> {late}");
        let steps: Vec<&serde_json::Value> =
            log.iter().filter(|l| l.get("step").is_some()).collect();
        if name == "adv" {
            let ascent = &steps[0]["ascent"];
            assert!(
                ascent["perturbed_loss"].as_f64().unwrap() > ascent["start_loss"].as_f64().unwrap(),
                "{ascent}"
            );
            assert!(ascent["largest_norm"].as_f64().unwrap() <= 0.01 * (1.0 + 1e-6));
        }
        for checkpoint in ["best", "last"] {
            assert_eq!(recorded_method(&out.join(checkpoint)), name);
        }
        // Two short runs with the same seed end bit-identical.
        extra.extend(["--max-steps", "3"]);
        let short: Vec<PathBuf> = (0..2)
            .map(|i| dir.path().join(format!("{name}-short-{i}")))
            .collect();
        let weights = |f: &PathBuf| {
            train(f, &extra);
            std::fs::read(f.join("last").join("model.safetensors")).unwrap()
        };
        assert!(
            weights(&short[0]) == weights(&short[1]),
            "{name}: the same seed gave different weights"
        );
    }
}

/// Parallel lines over the yes/no task's words: each "translation" is its
/// sentence with every word mapped to another word of the vocabulary.
fn parallel_file(dir: &Path) -> PathBuf {
    let train = std::fs::read_to_string(fixtures().join("train/train.tsv")).unwrap();
    let translate = |s: &str| -> String {
        s.split(' ')
            .map(|w| match w {
                "water" => "river",
                "stone" => "city",
                "green" => "light",
                "cat" => "paper",
                "house" => "window",
                "yes" => "yes",
                "no" => "no",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines = String::new();
    for line in train.lines() {
        for sentence in line.split('\t').take(2) {
            lines.push_str(&format!("{sentence}\t{}\n", translate(sentence)));
        }
    }
    let path = dir.join("parallel-en-xx.tsv");
    std::fs::write(&path, lines).unwrap();
    path
}

/// `model`'s tokenizer (64 tokens) and the lines of `parallel_file`
/// (English text, translation).
fn tokenizer_and_translations(
    model: &Model,
) -> (xltc_runtime::TextTokenizer, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer =
        xltc_runtime::TextTokenizer::from_json(&model.tokenizer_json, &model.origin, 64).unwrap();
    let lines = std::fs::read_to_string(parallel_file(dir.path()))
        .unwrap()
        .lines()
        .map(|l| l.split_once('\t').unwrap())
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    (tokenizer, lines)
}

/// The first twelve lines of `parallel_file`, tokenized for `model`.
fn parallel_lines(model: &Model) -> Vec<(Encoding, Encoding)> {
    let (tokenizer, lines) = tokenizer_and_translations(model);
    let one = |t: &str| {
        tokenizer
            .encode(t, None, xltc_runtime::Overflow::Truncate)
            .unwrap()
    };
    lines
        .iter()
        .take(12)
        .map(|(a, b)| (one(a), one(b)))
        .collect()
}

/// The symmetric-KL term's rows for `model`: the fixture's first twelve
/// training pairs, and each with both sentences replaced by their
/// `parallel_file` translations.
fn translated_pairs(model: &Model) -> Vec<(Encoding, Encoding)> {
    let (tokenizer, lines) = tokenizer_and_translations(model);
    let translation: std::collections::HashMap<String, String> = lines.into_iter().collect();
    let train = std::fs::read_to_string(fixtures().join("train/train.tsv")).unwrap();
    let pair = |a: &str, b: &str| {
        tokenizer
            .encode(a, Some(b), xltc_runtime::Overflow::Truncate)
            .unwrap()
    };
    train
        .lines()
        .take(12)
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            let (a, b) = (fields[0], fields[1]);
            (pair(a, b), pair(&translation[a], &translation[b]))
        })
        .collect()
}

/// The three alignment measures, each with the tiny model's parallel data
/// it reads: parallel lines for the pooled states' cosine and contrastive
/// terms, training pairs and their translated versions for the head's
/// symmetric KL.
fn alignment_measures(model: &Model) -> Vec<(AlignmentLoss, Vec<(Encoding, Encoding)>)> {
    let (lines, pairs) = (parallel_lines(model), translated_pairs(model));
    vec![
        (AlignmentLoss::Cosine, lines.clone()),
        (AlignmentLoss::Contrastive { temperature: 0.05 }, lines),
        (AlignmentLoss::SymmetricKl, pairs),
    ]
}

/// One optimizer step over the tiny training examples with `settings` and
/// the parallel data `parallel`, on the GPU or on the CPU reference.
fn step_with(
    model: &Model,
    settings: Settings,
    parallel: &[(Encoding, Encoding)],
    on_gpu: bool,
) -> xltc::train::StepRecord {
    let mut trainer = if on_gpu {
        Trainer::on_gpu(model, settings).unwrap()
    } else {
        Trainer::new(model, settings).unwrap()
    };
    trainer.parallel = parallel.to_vec();
    let examples = common::training_examples();
    let group: Vec<&Example> = examples.iter().collect();
    trainer.train_step(&group, 0, 10).unwrap()
}

/// Asserts that the CPU reference's and the GPU's `what` agree within 1e-4.
fn assert_close(what: &str, cpu: f64, gpu: f64) {
    assert!(
        (cpu - gpu).abs() <= 1e-4 * cpu.abs().max(gpu.abs()),
        "{what}: cpu {cpu} gpu {gpu}"
    );
}

/// Settings with the alignment term at `align_weight` (batch 4, two
/// micro-batches, lr 1e-3, dropout off), its English side attacked when
/// `method` is adversarial.
fn aligned(method: Method, align_weight: f64, align_loss: AlignmentLoss) -> Settings {
    let align_attack = matches!(method, Method::Adv(_));
    Settings {
        batch: 4,
        accumulation: 2,
        lr: 1e-3,
        dropout: false,
        method,
        parallel: Some(xltc::train::method::Parallel {
            files: Vec::new(),
            align_weight,
            code_switch: 0.0,
            align_attack,
            align_loss,
        }),
        ..Settings::default()
    }
}

/// Adversarial training with the alignment term attacked on its English
/// side (--align-attack), for each alignment measure (the cosine, the
/// contrastive term and the head's symmetric KL on translated training
/// pairs): the ascent raises the alignment loss above where it started and
/// stays inside the ball, and the GPU's step is the CPU reference's (losses
/// and gradient norm within 1e-4).
#[test]
fn the_attacked_alignment_term_rises_inside_the_ball_on_both_devices() {
    let model = Model::load(&model_dir("tiny-xlmr")).unwrap();
    let eps = 0.5;
    let adversarial = Method::Adv(Adversarial {
        eps,
        step: 0.3,
        steps: 2,
        norm: Norm::L2Token,
        init: Start::Zero,
        clean_weight: 0.5,
    });
    for (loss, parallel) in alignment_measures(&model) {
        let settings = aligned(adversarial.clone(), 1.0, loss);
        let cpu = step_with(&model, settings.clone(), &parallel, false);
        let gpu = step_with(&model, settings, &parallel, true);
        for record in [&cpu, &gpu] {
            let ascent = record.alignment_ascent.as_ref().unwrap();
            assert!(
                ascent.perturbed_loss > ascent.start_loss && ascent.start_loss > 0.0,
                "{loss:?}: {ascent:?}"
            );
            assert!(
                ascent.largest_norm <= eps * (1.0 + 1e-6),
                "{loss:?}: {ascent:?}"
            );
            assert_eq!(record.alignment_loss, Some(ascent.perturbed_loss));
        }
        let (a, b) = (
            cpu.alignment_ascent.clone().unwrap(),
            gpu.alignment_ascent.clone().unwrap(),
        );
        assert_close(&format!("{loss:?}: start"), a.start_loss, b.start_loss);
        assert_close(
            &format!("{loss:?}: perturbed"),
            a.perturbed_loss,
            b.perturbed_loss,
        );
        assert_close(
            &format!("{loss:?}: gradient norm"),
            cpu.gradient_norm,
            gpu.gradient_norm,
        );
    }
}

/// One optimizer step with the alignment term (weight 1, two micro-batches
/// of four pairs and four parallel lines each, dropout off) on the GPU and
/// on the CPU reference, for the cosine term, the contrastive one and the
/// head's symmetric KL (on training pairs and their translated versions):
/// the same alignment loss and gradient norm (within 1e-4; the gradients
/// include the term's), a norm other than the task's alone, and the terms
/// differ.
#[test]
fn the_alignment_term_on_the_gpu_is_the_references() {
    let model = Model::load(&model_dir("tiny-xlmr")).unwrap();
    let measures = alignment_measures(&model);
    let task_only = step_with(
        &model,
        aligned(Method::Vanilla, 0.0, AlignmentLoss::Cosine),
        &measures[0].1,
        false,
    );
    assert!(task_only.alignment_loss.is_none());
    let mut norms = Vec::new();
    for (loss, parallel) in measures {
        let settings = aligned(Method::Vanilla, 1.0, loss);
        let cpu = step_with(&model, settings.clone(), &parallel, false);
        let gpu = step_with(&model, settings, &parallel, true);
        let (a, b) = (cpu.alignment_loss.unwrap(), gpu.alignment_loss.unwrap());
        assert!(a > 0.0, "{loss:?}: alignment loss {a}");
        assert_close(&format!("{loss:?}: alignment loss"), a, b);
        assert_close(
            &format!("{loss:?}: gradient norm"),
            cpu.gradient_norm,
            gpu.gradient_norm,
        );
        assert_close(&format!("{loss:?}: loss"), cpu.loss, gpu.loss);
        assert_ne!(
            task_only.gradient_norm, cpu.gradient_norm,
            "{loss:?}: the term added no gradient"
        );
        eprintln!("alignment {loss:?}: cpu {cpu:?}\ngpu {gpu:?}");
        norms.push(cpu.gradient_norm);
    }
    assert!(
        norms[0] != norms[1] && norms[1] != norms[2] && norms[0] != norms[2],
        "two terms gave the same gradient: {norms:?}"
    );
}

/// Parallel data from the command line, beside a method (RS-RP here): a
/// strong alignment term (weight 10) ends with a sentence and its
/// translation closer than a negligible one (1e-6) does, from the same
/// start (the tiny model's mean-pooled states already have cosines near 1,
/// so the comparison, not the fall, is what shows the term at work);
/// code-switching trains; the log and the checkpoints record how; bad
/// parallel lines and flags without --parallel are refused.
#[test]
fn parallel_data_trains_an_alignment_term_and_code_switches() {
    let dir = tempfile::tempdir().unwrap();
    let parallel = path(&parallel_file(dir.path()));
    let run = |weight: &str, measure: &[&str]| {
        let out = dir.path().join(format!("run-{weight}{}", measure.join("")));
        let flags = [
            &[
                "--epochs",
                "4",
                "--eval-every",
                "16",
                "--method",
                "rs-rp",
                "--sigma",
                "0.002",
                "--parallel",
                &parallel,
                "--align-weight",
                weight,
                "--code-switch",
                "0.5",
            ][..],
            measure,
        ]
        .concat();
        let log = train(&out, &flags);
        let alignment: Vec<f64> = log
            .iter()
            .filter_map(|l| l.get("alignment_loss").and_then(|v| v.as_f64()))
            .collect();
        assert_eq!(alignment.len(), 32, "64 pairs, batch 8, 4 epochs");
        (out, log, alignment)
    };
    // The term's loss over the last 8 steps: weight 10 against 1e-6, from
    // the same start, must end below `factor` times the negligible one's.
    let ends_lower = |measure: &[&str], factor: f64| {
        let (out, log, strong) = run("10", measure);
        let (_, _, weak) = run("0.000001", measure);
        let last = |s: &[f64]| s[24..].iter().sum::<f64>() / 8.0;
        let (strong, weak) = (last(&strong), last(&weak));
        eprintln!(
            "{measure:?}: alignment loss, last 8 steps: weight 10 {strong}, weight 1e-6 {weak}"
        );
        assert!(
            strong < factor * weak,
            "{measure:?}: alignment loss at the end: weight 10 {strong} vs 1e-6 {weak}"
        );
        (out, log)
    };
    let (out, log) = ends_lower(&[], 0.5);
    let settings = &log[0]["settings"]["parallel"];
    assert_eq!(settings["align_weight"], 10.0);
    assert_eq!(settings["code_switch"], 0.5);
    assert_eq!(settings["align_loss"], "cosine");
    // The contrastive term: recorded with its temperature, and a strong
    // one ends lower than a negligible one (the tiny model's sentences all
    // start close together, near the loss of guessing, ln 8 a direction).
    let contrastive = ["--align-loss", "contrastive", "--align-temperature", "0.1"];
    let (_, log) = ends_lower(&contrastive, 0.8);
    let settings = &log[0]["settings"]["parallel"];
    let recorded = settings["align_loss"]["contrastive"]["temperature"].as_f64();
    assert_eq!(recorded, Some(0.1), "{settings}");
    // The head's symmetric KL between training pairs and their translated
    // versions: recorded, and a strong one ends lower.
    let (_, log) = ends_lower(&["--align-loss", "symmetric-kl"], 0.5);
    assert_eq!(log[0]["settings"]["parallel"]["align_loss"], "symmetric-kl");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("last/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["xltc_training"]["parallel"]["align_weight"], 10.0);
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "one\tein\ntwo zwei\n").unwrap();
    let unrelated = dir.path().join("unrelated.tsv");
    std::fs::write(&unrelated, "one\tein\n").unwrap();
    for (flags, message) in [
        (
            vec!["--align-weight", "1"],
            "give --parallel FILE".to_owned(),
        ),
        (
            vec!["--parallel", &parallel],
            "--parallel needs a use".to_owned(),
        ),
        (
            vec!["--parallel", bad.to_str().unwrap(), "--align-weight", "1"],
            format!("{} line 2", bad.display()),
        ),
        (
            vec![
                "--parallel",
                &parallel,
                "--align-weight",
                "1",
                "--align-attack",
            ],
            "it needs --align-weight W and --method adv".to_owned(),
        ),
        (
            vec!["--align-loss", "contrastive"],
            "give --parallel FILE".to_owned(),
        ),
        (
            vec![
                "--parallel",
                &parallel,
                "--code-switch",
                "0.5",
                "--align-loss",
                "contrastive",
            ],
            "give --align-weight W".to_owned(),
        ),
        (
            vec![
                "--parallel",
                &parallel,
                "--align-weight",
                "1",
                "--align-temperature",
                "0.1",
            ],
            "give --align-loss contrastive".to_owned(),
        ),
        (
            vec![
                "--parallel",
                &parallel,
                "--align-weight",
                "1",
                "--align-loss",
                "contrastive",
                "--align-temperature",
                "0",
            ],
            "--align-temperature must be above 0 (got 0)".to_owned(),
        ),
        (
            vec![
                "--parallel",
                &parallel,
                "--align-weight",
                "1",
                "--align-loss",
                "symmetric-kl",
                "--align-temperature",
                "0.1",
            ],
            "give --align-loss contrastive".to_owned(),
        ),
        (
            vec![
                "--parallel",
                unrelated.to_str().unwrap(),
                "--align-weight",
                "1",
                "--align-loss",
                "symmetric-kl",
            ],
            "no training pair has a sentence in the --parallel files".to_owned(),
        ),
    ] {
        refused(dir.path(), &flags, &message);
    }
}
