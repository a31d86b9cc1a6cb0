//! `xltc compile`, `xltc inspect` and `xltc run model.xltc` as a user runs
//! them: the artifact's predictions (GPU, and the CPU reference on the same
//! artifact) equal the Hugging Face outputs; a damaged artifact is refused
//! with a clear error; a failed compile leaves no file behind.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{model_dir, Golden};

fn xltc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn compile(model: &str, out: &Path) {
    compile_with(model, out, &[]);
}

fn compile_with(model: &str, out: &Path, extra: &[&str]) {
    let model = model_dir(model);
    let args = [
        "compile",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-seq",
        "100",
        "--batch",
        "4",
    ];
    ok(&xltc(&[&args[..], extra].concat()));
}

/// `xltc run --json` on every fixture pair of `name` through `artifact`:
/// one record a pair.
fn fixture_records(artifact: &Path, name: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let golden = Golden::read(name);
    let texts = golden.texts("pairs.texts").unwrap();
    let pairs = golden.texts("pairs.pairs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_pairs_tsv(dir.path(), &texts, &pairs);
    let args = [
        "run",
        artifact.to_str().unwrap(),
        "--json",
        "--file",
        file.to_str().unwrap(),
    ];
    let stdout = ok(&xltc(&[&args[..], extra].concat()));
    assert_eq!(stdout.lines().count(), texts.len());
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Runs the fixture's pairs through the artifact and checks every probability.
fn check_predictions(artifact: &Path, name: &str, extra: &[&str]) {
    let golden = Golden::read(name);
    let logits = golden.array("pairs.output");
    let labels = logits.shape[1];
    let records = fixture_records(artifact, name, extra);
    for (record, expected) in records.iter().zip(logits.data.chunks(labels)) {
        let probs = common::probabilities(record);
        for (p, e) in probs.iter().zip(common::softmax(expected)) {
            assert!((p - e).abs() < 1e-4, "{name} {extra:?}: {probs:?}");
        }
    }
}

#[test]
fn compiled_artifacts_predict_like_hugging_face_on_gpu_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiny-bert", "tiny-xlmr"] {
        let artifact = dir.path().join(format!("{name}.xltc"));
        compile(name, &artifact);
        // 6 pairs of unlike lengths, run shortest first in batches of 4 and 2:
        // the outputs must come back in the order of the input lines.
        check_predictions(&artifact, name, &[]);
        check_predictions(&artifact, name, &["--cpu"]);
    }
}

#[test]
fn inspect_shows_buckets_kernels_memory_and_flops() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-bert.xltc");
    compile("tiny-bert", &artifact);
    let out = ok(&xltc(&[
        "inspect",
        artifact.to_str().unwrap(),
        "--kernels",
        "--buffers",
    ]));
    for needle in [
        "BertForSequenceClassification",
        "labels entailment, neutral, contradiction",
        "bucket batch 1 x seq 16",
        "bucket batch 4 x seq 100",
        "peak memory",
        "MFLOP per sequence",
        "matmul_lanes[",
        "embeddings[",
        "layer_norm[",
        "head[",
        "tuning: none",
        "activations #0",
        "bert.embeddings.word_embeddings.weight + bert.embeddings.token_type_embeddings",
        "input_ids + token_type_ids + position_ids",
    ] {
        assert!(out.contains(needle), "inspect lacks {needle:?}:\n{out}");
    }
}

/// `xltc compile --training` adds training's programs by kind; inspect
/// shows what every program shares (the tiny BERT's 41,621 parameters are
/// 162.6 KiB in f32; gradients the same, two AdamW moments twice that) and
/// each bucket's train step with its peak training memory.
#[test]
fn inspect_shows_training_programs_and_their_memory() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-bert.xltc");
    compile("tiny-bert", &artifact);
    let out = ok(&xltc(&["inspect", artifact.to_str().unwrap()]));
    assert!(out.contains("training: not compiled"), "{out}");
    compile_with(
        "tiny-bert",
        &artifact,
        &["--training", "--train-batch", "2"],
    );
    let out = ok(&xltc(&["inspect", artifact.to_str().unwrap(), "--buffers"]));
    for needle in [
        "training: 41 parameters (41621 elements), dropout on, weight decay 0",
        "parameters 162.6 KiB, gradients 162.6 KiB, AdamW moments 325.2 KiB (total 650.3 KiB)",
        "optimizer step:",
        "train step batch 2 x seq 16",
        "train step batch 2 x seq 112",
        "peak training memory",
        "dev forward batch 8 x seq 16",
        "moment 2",
        "gradient           grad bert.encoder.layer.0.attention.self.query.weight",
    ] {
        assert!(out.contains(needle), "inspect lacks {needle:?}:\n{out}");
    }
    // Longer sequences hold more activations.
    let activations: Vec<f64> = out
        .lines()
        .filter(|l| l.contains("train step batch"))
        .map(|l| {
            let after = l.split("activations ").nth(1).unwrap();
            let mut words = after.split(' ');
            let (value, unit) = (words.next().unwrap(), words.next().unwrap());
            let scale = match unit {
                "B" => 1.0,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                other => panic!("unit {other}"),
            };
            value.parse::<f64>().unwrap() * scale
        })
        .collect();
    assert_eq!(activations.len(), 7, "{out}");
    assert!(
        activations.windows(2).all(|w| w[0] < w[1]),
        "{activations:?}"
    );
}

/// A row of a profile's table: family, dispatches, share %, GFLOP/s.
type FamilyRow = (String, usize, f64, Option<f64>);

/// Parses a profile's sections: for each, its title, the dispatch count of
/// its header and the rows of its table.
fn profile_sections(out: &str) -> Vec<(String, usize, Vec<FamilyRow>)> {
    let mut sections = Vec::new();
    for line in out.lines() {
        if let Some((head, _)) = line.split_once(" dispatches, ") {
            let (title, count) = head.rsplit_once(": ").unwrap();
            let title = title.split(", batch ").next().unwrap();
            sections.push((title.to_owned(), count.parse().unwrap(), Vec::new()));
        } else if line.starts_with("| ") && !line.starts_with("| kernel family") {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let share = cells[3].trim_end_matches('%').parse().unwrap();
            let gflops = cells[4].parse().ok();
            let row = (
                cells[0].to_owned(),
                cells[1].parse().unwrap(),
                share,
                gflops,
            );
            sections
                .last_mut()
                .expect("a table after a header")
                .2
                .push(row);
        }
    }
    sections
}

/// `xltc profile` times every dispatch of a program: each section's
/// families cover all its dispatches, their shares add up to 100%, GEMMs
/// report GFLOP/s; with --training, the train step and the optimizer step.
#[test]
fn profile_times_every_dispatch_by_family() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-bert.xltc");
    compile_with(
        "tiny-bert",
        &artifact,
        &["--training", "--train-batch", "2"],
    );
    let path = artifact.to_str().unwrap();
    let forward = ok(&xltc(&[
        "profile", path, "--batch", "3", "--seq", "20", "--runs", "2",
    ]));
    let training = ok(&xltc(&["profile", path, "--seq", "20", "--training"]));
    assert!(forward.contains("adapter:"), "{forward}");
    let mut sections = profile_sections(&forward);
    sections.extend(profile_sections(&training));
    let titles: Vec<&str> = sections.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        titles,
        [
            format!("{path}: forward"),
            format!("{path}: train step"),
            format!("{path}: optimizer step")
        ]
    );
    assert!(
        forward.contains("batch 4 x seq 32"),
        "the smallest bucket: {forward}"
    );
    assert!(
        training.contains("train step, batch 2 x seq 32"),
        "{training}"
    );
    for (title, dispatches, rows) in &sections {
        let counted: usize = rows.iter().map(|r| r.1).sum();
        assert_eq!(counted, *dispatches, "{title}");
        let shares: f64 = rows.iter().map(|r| r.2).sum();
        assert!(
            (shares - 100.0).abs() < 0.5,
            "{title}: shares add to {shares}"
        );
    }
    let gemm = sections[1]
        .2
        .iter()
        .find(|r| r.0 == "matmul")
        .expect("GEMMs");
    assert!(gemm.3.is_some_and(|g| g > 0.0), "{gemm:?}");
    assert!(sections[2].2.iter().any(|r| r.0 == "adamw"), "{training}");
}

#[test]
fn a_damaged_artifact_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-xlmr.xltc");
    compile("tiny-xlmr", &artifact);
    let bytes = std::fs::read(&artifact).unwrap();
    let damaged = dir.path().join("damaged.xltc");
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "wrong magic",
            [b"NOTXLTC!".as_slice(), &bytes[8..]].concat(),
        ),
        (
            "version 99",
            [&bytes[..8], &99u32.to_le_bytes(), &bytes[12..]].concat(),
        ),
        ("checksum mismatch", {
            let mut b = bytes.clone();
            let i = b.len() - 100;
            b[i] ^= 0x40;
            b
        }),
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
    ];
    for (needle, content) in cases {
        std::fs::write(&damaged, content).unwrap();
        for command in ["run", "inspect"] {
            let mut args = vec![command, damaged.to_str().unwrap()];
            if command == "run" {
                args.extend(["--cpu", "--text", "Hallo"]);
            }
            let output = xltc(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success() && output.stdout.is_empty(),
                "{needle}: {stderr}"
            );
            assert!(
                stderr.contains("damaged.xltc") && stderr.contains(needle),
                "{needle}: {stderr}"
            );
        }
    }
}

/// Every number and flag of a manifest, by its path of object keys and
/// array indices: what a crafted artifact can change.
fn manifest_leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                path.push(key.clone());
                manifest_leaves(v, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                manifest_leaves(v, path, out);
                path.pop();
            }
        }
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => out.push(path.clone()),
        _ => {}
    }
}

fn leaf_mut<'a>(value: &'a mut serde_json::Value, path: &[String]) -> &'a mut serde_json::Value {
    path.iter().fold(value, |v, key| match v {
        serde_json::Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        other => &mut other[key.as_str()],
    })
}

/// A value a crafted manifest might put where `old` was: off by one,
/// doubled, zero, or past a limit of the adapter or of u32.
fn crafted(old: &serde_json::Value, draw: u64) -> serde_json::Value {
    match old {
        serde_json::Value::Bool(b) => serde_json::Value::Bool(!b),
        v => {
            let n = v.as_u64().unwrap_or(1);
            let picks = [
                0,
                1,
                n + 1,
                n.saturating_sub(1),
                n * 2,
                n / 2,
                65_535,
                65_536,
                1 << 31,
                u32::MAX as u64,
                1 << 40,
            ];
            serde_json::json!(picks[(draw % picks.len() as u64) as usize])
        }
    }
}

/// The artifact's bytes with `manifest` in place of its own and a fresh
/// checksum: what someone who edits the JSON and re-hashes it makes.
fn rehashed(original: &[u8], manifest: &serde_json::Value) -> Vec<u8> {
    use sha2::Digest as _;
    let artifact = xltc_runtime::artifact::Artifact::from_bytes("original", original).unwrap();
    let mut bytes = artifact.to_bytes();
    let json = serde_json::to_vec(manifest).unwrap();
    let manifest_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let rest = bytes[20 + manifest_len..bytes.len() - 32].to_vec();
    bytes.truncate(12);
    bytes.extend((json.len() as u64).to_le_bytes());
    bytes.extend(json);
    bytes.extend(rest);
    let checksum = sha2::Sha256::digest(&bytes);
    bytes.extend(checksum);
    bytes
}

#[test]
fn crafted_manifests_are_refused_or_run_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("tiny-bert.xltc");
    // One bucket, so that every mutation is in the program that runs.
    let model = model_dir("tiny-bert");
    let args = [
        "compile",
        model.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
    ];
    ok(&xltc(
        &[&args[..], &["--max-seq", "16", "--batch", "1"]].concat(),
    ));
    let original = std::fs::read(&artifact).unwrap();
    let manifest_len = u64::from_le_bytes(original[12..20].try_into().unwrap()) as usize;
    let manifest: serde_json::Value =
        serde_json::from_slice(&original[20..20 + manifest_len]).unwrap();
    let mut leaves = Vec::new();
    manifest_leaves(&manifest, &mut Vec::new(), &mut leaves);
    let crafted_file = dir.path().join("crafted.xltc");
    let (mut state, mut refused) = (0x9e37_79b9_7f4a_7c15u64, 0);
    let mutations = 200;
    for _ in 0..mutations {
        let draws = [0, 1].map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 11
        });
        let path = &leaves[(draws[0] % leaves.len() as u64) as usize];
        let mut mutated = manifest.clone();
        let leaf = leaf_mut(&mut mutated, path);
        *leaf = crafted(leaf, draws[1]);
        std::fs::write(&crafted_file, rehashed(&original, &mutated)).unwrap();
        let output = xltc(&[
            "run",
            crafted_file.to_str().unwrap(),
            "--text",
            "hello world",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("{} = {}", path.join("."), leaf_mut(&mut mutated, path));
        assert!(
            output.status.success() || output.status.code() == Some(1),
            "{what}: exit {:?}\n{stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        if !output.status.success() {
            assert!(
                stderr.contains("crafted.xltc"),
                "{what}: an error that does not name the file: {stderr}"
            );
            refused += 1;
        }
    }
    assert!(
        refused > mutations / 4,
        "only {refused} of {mutations} crafted manifests refused"
    );
}

#[test]
fn a_failed_compile_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.xltc");
    let model = model_dir("tiny-bert");
    let output = xltc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-seq",
        "100000",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--max-seq 100000"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `--no-fuse` emits one kernel an op; the default fuses GEMM + bias (+ GELU)
/// and attention. Both predict what Hugging Face predicts.
#[test]
fn fused_and_unfused_artifacts_agree() {
    let dir = tempfile::tempdir().unwrap();
    let fused = dir.path().join("fused.xltc");
    let unfused = dir.path().join("unfused.xltc");
    let default = dir.path().join("default.xltc");
    compile_with("tiny-bert", &fused, &["--fuse-all"]);
    compile_with("tiny-bert", &unfused, &["--no-fuse"]);
    compile("tiny-bert", &default);
    let kernels = |path: &Path| ok(&xltc(&["inspect", path.to_str().unwrap(), "--kernels"]));
    let (with, without) = (kernels(&fused), kernels(&unfused));
    // By default, the fusions measured slower on lavapipe stay off; the
    // others are on.
    let by_default = kernels(&default);
    assert!(
        !by_default.contains(" attention[")
            && !by_default.contains(" linear_norm[")
            && by_default.contains(" embeddings[")
            && by_default.contains(" head["),
        "{by_default}"
    );
    check_predictions(&default, "tiny-bert", &[]);
    assert!(
        with.contains("attention[")
            && !with.contains("attention_scores[")
            && !with.contains("attention_dots["),
        "{with}"
    );
    // Un-fused, attention is its three products (the scores and the context
    // on the blocked kernels where the head width is a multiple of 4).
    assert!(
        without.contains("attention_dots[")
            && without.contains("masked_softmax[")
            && without.contains("attention_sums[")
            && !without.contains("attention["),
        "{without}"
    );
    check_predictions(&unfused, "tiny-bert", &[]);
}

/// The logits of every fixture pair through `artifact`.
fn logits(artifact: &Path, name: &str) -> Vec<Vec<f64>> {
    let records = fixture_records(artifact, name, &[]);
    let logits = records
        .iter()
        .map(|r| r["logits"].as_array().unwrap().clone());
    logits
        .map(|l| l.iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

#[test]
fn a_tuned_artifact_records_its_choices_runs_them_and_predicts_as_an_untuned_one() {
    let dir = tempfile::tempdir().unwrap();
    let (tuned, untuned) = (
        dir.path().join("tuned.xltc"),
        dir.path().join("untuned.xltc"),
    );
    compile_with("tiny-bert", &tuned, &["--tune"]);
    compile("tiny-bert", &untuned);
    let inspect = |path: &Path| ok(&xltc(&["inspect", path.to_str().unwrap(), "--kernels"]));
    let (report, plain) = (inspect(&tuned), inspect(&untuned));
    assert!(plain.contains("tuning: none"), "{plain}");
    assert!(
        report.contains("GEMMs tuned on") && report.contains("llvmpipe"),
        "{report}"
    );
    // The four choices of the two adapter-dependent fusions, one chosen.
    let fusions: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("fusions tuned"))
        .collect();
    assert_eq!(fusions.len(), 4, "{report}");
    let chosen = fusions.iter().filter(|l| l.ends_with("<- chosen")).count();
    assert_eq!(chosen, 1, "{report}");
    // Every tuned GEMM's chosen kernel is the one its buckets run.
    let mut tuned_gemms = 0;
    for line in report
        .lines()
        .filter(|l| l.trim_start().starts_with("GEMM "))
    {
        let (gemm, chosen) = line.trim_start()["GEMM ".len()..].split_once(": ").unwrap();
        let words: Vec<&str> = gemm.split_whitespace().collect();
        let (m, n, k) = (words[0], words[2], words[4]);
        let kernel = chosen.split(' ').next().unwrap();
        let name = format!("K={k},M={m},N={n},");
        assert!(
            report
                .lines()
                .any(|l| l.contains(&format!(" {kernel}[")) && l.contains(&name)),
            "{line}: no {kernel} kernel with {name}\n{report}"
        );
        tuned_gemms += 1;
    }
    assert!(tuned_gemms > 0, "{report}");
    for (a, b) in logits(&tuned, "tiny-bert")
        .iter()
        .zip(logits(&untuned, "tiny-bert"))
    {
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
    }
}
