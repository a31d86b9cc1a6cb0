//! The `xltc` command as a user runs it: its help, and predictions that equal
//! the Hugging Face reference outputs.

mod common;

use std::process::Command;

use common::{model_dir, Golden};

fn xltc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let output = xltc(args);
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"));
    }
}

/// Without --cpu the same prediction runs on the GPU adapter, which it names.
#[test]
fn the_gpu_path_agrees_with_the_cpu_reference() {
    let model = model_dir("tiny-xlmr");
    let run = |extra: &[&str]| {
        let args = [
            "run",
            model.to_str().unwrap(),
            "--json",
            "--text",
            "Hallo Welt",
            "--pair",
            "Hello world",
        ];
        let output = xltc(&[&args[..], extra].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let probs = common::probabilities(&record);
        (probs, String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (gpu, stderr) = run(&[]);
    let (cpu, _) = run(&["--cpu"]);
    assert!(stderr.contains("adapter"), "{stderr}");
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!((g - c).abs() < 1e-4, "gpu {gpu:?} cpu {cpu:?}");
    }
}

/// Pairs from a TSV file, in batches of 4, through the binary: the printed
/// probabilities equal the softmax of the Hugging Face logits.
#[test]
fn classifier_probabilities_from_a_file_match_hugging_face() {
    for name in ["tiny-bert", "tiny-xlmr"] {
        let golden = Golden::read(name);
        let texts = golden.texts("pairs.texts").unwrap();
        let pairs = golden.texts("pairs.pairs").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = common::write_pairs_tsv(dir.path(), &texts, &pairs);
        let model = model_dir(name);
        let args = [
            "run",
            model.to_str().unwrap(),
            "--cpu",
            "--json",
            "--batch",
            "4",
        ];
        let output = xltc(&[&args[..], &["--file", file.to_str().unwrap()]].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let logits = golden.array("pairs.output");
        let labels = logits.shape[1];
        assert_eq!(stdout.lines().count(), texts.len());
        for (line, expected_logits) in stdout.lines().zip(logits.data.chunks(labels)) {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let expected = common::softmax(expected_logits);
            let probs = common::probabilities(&record);
            for (p, e) in probs.iter().zip(&expected) {
                assert!((p - e).abs() < 1e-4, "{name}: {probs:?} vs {expected:?}");
            }
            let best = (0..labels)
                .max_by(|&a, &b| expected[a].total_cmp(&expected[b]))
                .unwrap();
            let label_names = record["labels"].as_array().unwrap();
            assert_eq!(record["label"], label_names[best]);
        }
    }
}

/// An embedding model given a pair embeds both sentences and prints their
/// cosine; a translation scores higher than an unrelated sentence.
#[test]
fn embedding_model_compares_a_pair_across_languages() {
    let model = model_dir("multilingual-e5-small");
    let cosine = |a: &str, b: &str| -> f64 {
        let output = xltc(&[
            "run",
            model.to_str().unwrap(),
            "--cpu",
            "--json",
            "--text",
            a,
            "--pair",
            b,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let embedding = record["embedding"].as_array().unwrap();
        let norm: f64 = embedding
            .iter()
            .map(|v| v.as_f64().unwrap().powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "normalised embedding, norm {norm}"
        );
        record["cosine"].as_f64().unwrap()
    };
    let translation = cosine(
        "query: The weather is nice today.",
        "query: Das Wetter ist heute schön.",
    );
    let unrelated = cosine(
        "query: The weather is nice today.",
        "query: Der Zug hat zehn Minuten Verspätung.",
    );
    assert!(
        translation > unrelated + 0.05,
        "translation {translation}, unrelated {unrelated}"
    );
}
