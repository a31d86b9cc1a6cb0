//! Bad input through the `xltc` binary: every case must fail with a non-zero
//! exit, an error that names the file and the tensor, field or line, and
//! nothing on standard output.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{edit_tensors, model_dir};
use safetensors::Dtype;
use tempfile::TempDir;

fn tiny_bert_copy() -> TempDir {
    common::model_copy("tiny-bert")
}

fn xltc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

fn run_on(model: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", model.to_str().unwrap(), "--cpu"];
    if !extra.iter().any(|a| *a == "--text" || *a == "--file") {
        args.extend(["--text", "Der Hund schläft.", "--pair", "The dog sleeps."]);
    }
    args.extend(extra);
    xltc(&args)
}

/// Asserts a clean failure whose message holds every one of `needles`.
fn assert_fails(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, stderr: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "partial output: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

use common::edit_config;

#[test]
fn a_missing_model_path_is_named() {
    assert_fails(
        &run_on(Path::new("/nonexistent/model"), &[]),
        &["/nonexistent/model", "no such file"],
    );
}

#[test]
fn missing_config_or_tokenizer_is_named() {
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let dir = tiny_bert_copy();
        std::fs::remove_file(dir.path().join(file)).unwrap();
        assert_fails(&run_on(dir.path(), &[]), &[file, "missing"]);
    }
}

#[test]
fn a_missing_tensor_is_named_with_its_shape() {
    let dir = tiny_bert_copy();
    let name = "bert.encoder.layer.1.output.dense.weight";
    edit_tensors(dir.path(), |t| t.retain(|x| x.0 != name));
    assert_fails(
        &run_on(dir.path(), &[]),
        &["model.safetensors", name, "missing", "[36, 37]"],
    );
}

#[test]
fn an_unexpected_tensor_is_named() {
    let dir = tiny_bert_copy();
    let name = "bert.encoder.layer.7.attention.self.query.weight";
    edit_tensors(dir.path(), |t| {
        let copy = t
            .iter()
            .find(|x| x.0.ends_with("layer.0.attention.self.query.weight"))
            .unwrap();
        let extra = (name.to_owned(), copy.1, copy.2.clone(), copy.3.clone());
        t.push(extra);
    });
    assert_fails(
        &run_on(dir.path(), &[]),
        &["model.safetensors", name, "unexpected"],
    );
}

#[test]
fn a_wrong_shape_names_expected_and_actual() {
    let dir = tiny_bert_copy();
    edit_tensors(dir.path(), |t| {
        let classifier = t.iter_mut().find(|x| x.0 == "classifier.weight").unwrap();
        classifier.2 = vec![2, 36];
        classifier.3.truncate(2 * 36 * 4);
    });
    assert_fails(
        &run_on(dir.path(), &[]),
        &["classifier.weight", "[2, 36]", "expected [3, 36]"],
    );
}

#[test]
fn a_wrong_dtype_is_named() {
    let dir = tiny_bert_copy();
    let name = "bert.embeddings.LayerNorm.weight";
    edit_tensors(dir.path(), |t| {
        let tensor = t.iter_mut().find(|x| x.0 == name).unwrap();
        tensor.1 = Dtype::I32;
    });
    assert_fails(&run_on(dir.path(), &[]), &[name, "dtype I32"]);
}

#[test]
fn half_precision_weights_are_read() {
    let dir = tiny_bert_copy();
    edit_tensors(dir.path(), |t| {
        for (_, dtype, _, bytes) in t.iter_mut() {
            let halves = bytes.chunks_exact(4).flat_map(|b| {
                half::f16::from_f32(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes()
            });
            *bytes = halves.collect();
            *dtype = Dtype::F16;
        }
    });
    let output = run_on(dir.path(), &["--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn truncated_or_corrupt_safetensors_is_refused() {
    let dir = tiny_bert_copy();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &run_on(dir.path(), &[]),
        &["model.safetensors", "not a valid safetensors file"],
    );
    let mut corrupt = bytes.clone();
    corrupt[8..40].fill(b'#');
    std::fs::write(&path, &corrupt).unwrap();
    assert_fails(
        &run_on(dir.path(), &[]),
        &["model.safetensors", "not a valid safetensors file"],
    );
    std::fs::write(&path, b"xl").unwrap();
    assert_fails(
        &run_on(dir.path(), &[]),
        &["model.safetensors", "not a valid safetensors file"],
    );
}

#[test]
fn unsupported_architectures_are_refused_by_name() {
    let cases: [(&str, serde_json::Value, &str); 4] = [
        ("model_type", "gpt2".into(), "model_type \"gpt2\""),
        (
            "architectures",
            serde_json::json!(["BertForTokenClassification"]),
            "BertForTokenClassification",
        ),
        ("hidden_act", "relu".into(), "hidden_act \"relu\""),
        (
            "position_embedding_type",
            "relative_key".into(),
            "relative_key",
        ),
    ];
    for (field, value, needle) in cases {
        let dir = tiny_bert_copy();
        edit_config(dir.path(), |c| c[field] = value);
        assert_fails(
            &run_on(dir.path(), &[]),
            &["config.json", "unsupported architecture", needle],
        );
    }
}

#[test]
fn a_broken_config_names_the_file_and_field() {
    let dir = tiny_bert_copy();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    assert_fails(&run_on(dir.path(), &[]), &["config.json", "not valid JSON"]);
    let dir = tiny_bert_copy();
    edit_config(dir.path(), |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    assert_fails(
        &run_on(dir.path(), &[]),
        &["config.json", "hidden_size is missing"],
    );
}

/// A classifier's config.json with neither id2label nor num_labels (what
/// recent transformers writes for its default of two labels) reads as
/// transformers reads it: LABEL_0 and LABEL_1. With num_labels 3 and a
/// two-row classifier, the shape error names the tensor.
#[test]
fn a_classifier_config_without_labels_has_transformers_two() {
    let dir = common::model_copy("tiny-xlmr");
    edit_config(dir.path(), |c| {
        let c = c.as_object_mut().unwrap();
        c.remove("id2label");
        c.remove("label2id");
    });
    let output = run_on(dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("LABEL_0") && stdout.contains("LABEL_1"),
        "{stdout}"
    );
    edit_config(dir.path(), |c| c["num_labels"] = 3.into());
    assert_fails(&run_on(dir.path(), &[]), &["classifier.out_proj.weight"]);
}

#[test]
fn empty_texts_are_refused() {
    let model = model_dir("tiny-bert");
    let model = model.as_path();
    assert_fails(
        &run_on(model, &["--text", ""]),
        &["--text", "text is empty"],
    );
    assert_fails(&run_on(model, &["--text", "   "]), &["text is empty"]);
    assert_fails(
        &run_on(model, &["--text", "Hallo", "--pair", " "]),
        &["pair is empty"],
    );
}

#[test]
fn a_text_longer_than_the_maximum_is_refused_unless_truncation_is_asked_for() {
    let model = model_dir("tiny-xlmr");
    let long = "This sentence is certainly longer than eight tokens in any tokenizer.";
    let args = ["--text", long, "--max-len", "8"];
    assert_fails(&run_on(&model, &args), &["--text", "maximum length is 8"]);
    let output = run_on(&model, &[&args[..], &["--truncate"]].concat());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_fails(
        &run_on(&model, &["--max-len", "100000"]),
        &["--max-len 100000"],
    );
}

#[test]
fn errors_in_an_input_file_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.tsv");
    std::fs::write(&file, "# comment\nHallo Welt\tHello world\n\t\tthree\n").unwrap();
    let model = model_dir("tiny-bert");
    assert_fails(
        &run_on(&model, &["--file", file.to_str().unwrap()]),
        &["inputs.tsv line 3"],
    );
    std::fs::write(&file, "Hallo Welt\n \tpair without text\n").unwrap();
    assert_fails(
        &run_on(&model, &["--file", file.to_str().unwrap()]),
        &["inputs.tsv line 2", "text is empty"],
    );
}
