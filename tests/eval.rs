//! `xltc eval` on the committed data folders (tests/fixtures/eval/): every
//! number it reports is recomputed here from `xltc run --json` predictions of
//! the same pairs by a plain loop: accuracies of the tiny classifiers
//! (argmax), the tiny encoder's cosine threshold (the best on dev-en by brute
//! force), the language-pair matrix, agreement with English by example id and
//! the encoder's alignment cosine. Bad input fails with the file and line and
//! leaves no report.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{edit_config, edit_tensors, fixtures, model_copy, model_dir};
use serde_json::Value;
use xltc::frontend::Model;
use xltc::reference;
use xltc_runtime::{ModelInputs, Overflow, TextTokenizer};

fn xltc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xltc"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn data(name: &str) -> PathBuf {
    fixtures().join("eval").join(name)
}

/// (id, sentence1, sentence2, label) of a pair file in either layout.
fn read_pairs(path: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let with_ids = lines[0].starts_with("id\t");
    if with_ids {
        lines.remove(0);
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            if with_ids {
                (f[0].into(), f[1].into(), f[2].into(), f[3].into())
            } else {
                (i.to_string(), f[0].into(), f[1].into(), f[2].into())
            }
        })
        .collect()
}

/// `xltc run --json` records for the pairs of `file`.
fn run_records(model: &str, file: &Path, extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let pairs = read_pairs(file);
    let lines: Vec<String> = pairs.iter().map(|p| format!("{}\t{}", p.1, p.2)).collect();
    let tsv = dir.path().join("pairs.tsv");
    std::fs::write(&tsv, lines.join("\n")).unwrap();
    let args = [
        &[
            "run",
            model,
            "--json",
            "--truncate",
            "--file",
            tsv.to_str().unwrap(),
        ][..],
        extra,
    ]
    .concat();
    ok(xltc(&args))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `xltc eval --json` lines, keyed by file, and the averages line.
fn eval_json(args: &[&str]) -> (HashMap<String, Value>, Value) {
    let out = ok(xltc(&[&["eval", "--json"][..], args].concat()));
    let mut files = HashMap::new();
    let mut averages = Value::Null;
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["file"].as_str() {
            Some(name) => {
                files.insert(name.to_owned(), v);
            }
            None => averages = v,
        }
    }
    (files, averages)
}

fn argmax(values: &[f64]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
        .unwrap()
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Plain predictions of a classifier on a file: id -> (predicted class, gold class).
fn classifier_predictions(
    model: &str,
    file: &Path,
    labels: &[&str],
    extra: &[&str],
) -> Vec<(String, usize, usize)> {
    let records = run_records(model, file, extra);
    read_pairs(file)
        .into_iter()
        .zip(records)
        .map(|(pair, record)| {
            let predicted = argmax(&common::probabilities(&record));
            let gold = labels
                .iter()
                .position(|l| *l == pair.3)
                .unwrap_or_else(|| pair.3.parse().unwrap());
            (pair.0, predicted, gold)
        })
        .collect()
}

/// The mean over tokens of `model`'s last hidden states for `text` alone,
/// on the reference.
fn mean_hidden_state(model: &Model, text: &str) -> Vec<f32> {
    let tokenizer =
        TextTokenizer::from_json(&model.tokenizer_json, &model.origin, model.max_tokens()).unwrap();
    let encoding = tokenizer.encode(text, None, Overflow::Error).unwrap();
    let seq = encoding.ids.len();
    let (pad, positions) = (model.config.pad_token_id, model.position_scheme());
    let inputs = ModelInputs::pad(&[encoding], seq, pad, positions);
    let outputs = reference::run(&model.graph(1, seq), &inputs).unwrap();
    let hidden = &outputs["last_hidden_state"].data;
    let width = hidden.len() / seq;
    (0..width)
        .map(|j| {
            (0..seq)
                .map(|t| f64::from(hidden[t * width + j]))
                .sum::<f64>() as f32
                / seq as f32
        })
        .collect()
}

fn accuracy(predictions: &[(String, usize, usize)]) -> f64 {
    predictions.iter().filter(|p| p.1 == p.2).count() as f64 / predictions.len() as f64
}

#[test]
fn a_classifier_is_scored_by_argmax_per_language_and_in_the_matrix() {
    let model = model_dir("tiny-xlmr");
    let model = model.to_str().unwrap();
    let folder = data("pawsx");
    let report = tempfile::tempdir().unwrap();
    let report_dir = report.path().join("r");
    let (files, averages) = eval_json(&[
        model,
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "--pairs-matrix",
        "-o",
        report_dir.to_str().unwrap(),
    ]);
    let labels = ["different", "paraphrase"];
    let mut by_file = HashMap::new();
    for name in [
        "test-en.tsv",
        "test-de.tsv",
        "test-en-de.tsv",
        "test-de-en.tsv",
    ] {
        let predictions = classifier_predictions(model, &folder.join(name), &labels, &["--cpu"]);
        let line = &files[name];
        assert!(
            approx(line["accuracy"].as_f64().unwrap(), accuracy(&predictions)),
            "{name}: {line}"
        );
        assert_eq!(line["pairs"].as_u64().unwrap() as usize, predictions.len());
        assert!(line["threshold"].is_null());
        by_file.insert(name, predictions);
    }
    assert_eq!(
        files["test-en-de.tsv"]["languages"],
        serde_json::json!(["en", "de"])
    );
    // Agreement with English, by example id (German lacks example 11).
    let english: HashMap<&str, usize> = by_file["test-en.tsv"]
        .iter()
        .map(|p| (p.0.as_str(), p.1))
        .collect();
    let german = &by_file["test-de.tsv"];
    let agree = german
        .iter()
        .filter(|p| english[p.0.as_str()] == p.1)
        .count() as f64
        / german.len() as f64;
    let consistency = &files["test-de.tsv"]["consistency"];
    assert!(
        approx(consistency["agreement"].as_f64().unwrap(), agree),
        "{consistency}"
    );
    assert_eq!(consistency["shared_pairs"], 11);
    // A classifier's alignment: the cosine of the means of its last hidden
    // states, each sentence run alone here (batch 1, no padding, the exact
    // products) against eval's padded batches on the fast path.
    let tiny = Model::load(&model_dir("tiny-xlmr")).unwrap();
    let mut cosines = Vec::new();
    for g in read_pairs(&folder.join("test-de.tsv")) {
        let english = read_pairs(&folder.join("test-en.tsv"));
        let e = english.iter().find(|e| e.0 == g.0).unwrap();
        for (a, b) in [(&e.1, &g.1), (&e.2, &g.2)] {
            let (a, b) = (mean_hidden_state(&tiny, a), mean_hidden_state(&tiny, b));
            cosines.push(f64::from(xltc_runtime::cosine(&a, &b)));
        }
    }
    let expected = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let reported = consistency["alignment"].as_f64().unwrap();
    assert!(
        (reported - expected).abs() < 1e-5 && expected < 0.9999,
        "alignment {reported} expected {expected}"
    );
    // Averages: languages, and the matrix with and without its diagonal.
    let acc = |n: &str| accuracy(&by_file[n]);
    let a = &averages["averages"];
    assert!(approx(
        a["languages"].as_f64().unwrap(),
        (acc("test-en.tsv") + acc("test-de.tsv")) / 2.0
    ));
    assert!(approx(
        a["languages_without_english"].as_f64().unwrap(),
        acc("test-de.tsv")
    ));
    let all =
        acc("test-en.tsv") + acc("test-de.tsv") + acc("test-en-de.tsv") + acc("test-de-en.tsv");
    assert!(approx(a["matrix"].as_f64().unwrap(), all / 4.0));
    assert!(approx(
        a["matrix_off_diagonal"].as_f64().unwrap(),
        (acc("test-en-de.tsv") + acc("test-de-en.tsv")) / 2.0
    ));
    for file in ["report.md", "report.json", "accuracy.svg", "matrix.svg"] {
        let text = std::fs::read_to_string(report_dir.join(file)).unwrap();
        assert!(text.len() > 100, "{file} is nearly empty");
    }
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(md.contains("| de | 11 |"), "{md}");
}

/// XNLI's string labels in the three-column layout, on the 3-label tiny BERT;
/// --langs keeps English and the languages named.
#[test]
fn xnli_labels_are_read_by_name() {
    let model = model_dir("tiny-bert");
    let model = model.to_str().unwrap();
    let folder = data("xnli");
    let report = tempfile::tempdir().unwrap();
    let out = report.path().join("r");
    let (files, _) = eval_json(&[
        model,
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "--langs",
        "fr",
        "-o",
        out.to_str().unwrap(),
    ]);
    let labels = ["entailment", "neutral", "contradiction"];
    for name in ["test-en.tsv", "test-fr.tsv"] {
        let predictions = classifier_predictions(model, &folder.join(name), &labels, &["--cpu"]);
        assert!(approx(
            files[name]["accuracy"].as_f64().unwrap(),
            accuracy(&predictions)
        ));
    }
    let (only_english, _) = eval_json(&[
        model,
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "--langs",
        "en",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(only_english.keys().collect::<Vec<_>>(), ["test-en.tsv"]);
    let folder = folder.to_str().unwrap();
    let unknown = xltc(&["eval", model, "--cpu", "--data", folder, "--langs", "de"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("has no test-de.tsv"), "{stderr}");
}

/// The tiny XLM-R's encoder without its head: a sentence-embedding model.
fn tiny_encoder() -> tempfile::TempDir {
    let dir = model_copy("tiny-xlmr");
    edit_tensors(dir.path(), |tensors| {
        tensors.retain(|t| !t.0.starts_with("classifier."));
    });
    edit_config(dir.path(), |c| {
        c["architectures"] = serde_json::json!(["XLMRobertaModel"])
    });
    dir
}

fn cosines(records: &[Value]) -> Vec<f64> {
    records
        .iter()
        .map(|r| r["cosine"].as_f64().unwrap())
        .collect()
}

#[test]
fn an_encoder_is_scored_by_one_cosine_threshold_tuned_on_english_dev() {
    let encoder = tiny_encoder();
    let model = encoder.path().to_str().unwrap();
    let folder = data("pawsx");
    let report = tempfile::tempdir().unwrap();
    let out = report.path().join("r");
    let (files, averages) = eval_json(&[
        model,
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let threshold = averages["threshold"].as_f64().unwrap();
    let gold = |file: &Path| -> Vec<bool> { read_pairs(file).iter().map(|p| p.3 == "1").collect() };
    let score = |cos: &[f64], gold: &[bool], t: f64| {
        cos.iter()
            .zip(gold)
            .filter(|(c, g)| (**c >= t) == **g)
            .count() as f64
            / cos.len() as f64
    };
    // The dev accuracy is the best any threshold reaches, and the reported
    // threshold reaches it (the run's cosines are f32, printed and reread).
    let dev = cosines(&run_records(model, &folder.join("dev-en.tsv"), &["--cpu"]));
    let dev_gold = gold(&folder.join("dev-en.tsv"));
    let best = dev
        .iter()
        .map(|&t| score(&dev, &dev_gold, t))
        .chain([score(&dev, &dev_gold, f64::INFINITY)])
        .fold(0.0, f64::max);
    let reported_dev = averages["dev"]["accuracy"].as_f64().unwrap();
    assert!(approx(reported_dev, best), "dev {reported_dev} best {best}");
    assert!(approx(score(&dev, &dev_gold, threshold), best));
    for name in ["test-en.tsv", "test-de.tsv"] {
        let cos = cosines(&run_records(model, &folder.join(name), &["--cpu"]));
        let expected = score(&cos, &gold(&folder.join(name)), threshold);
        assert!(
            approx(files[name]["accuracy"].as_f64().unwrap(), expected),
            "{name}"
        );
        assert!(approx(
            files[name]["threshold"].as_f64().unwrap(),
            threshold
        ));
    }
    // Alignment: the mean cosine of each English sentence and its German translation.
    let english = read_pairs(&folder.join("test-en.tsv"));
    let german = read_pairs(&folder.join("test-de.tsv"));
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for g in &german {
        let e = english.iter().find(|e| e.0 == g.0).unwrap();
        lines.push(format!("{}\t{}\t1", e.1, g.1));
        lines.push(format!("{}\t{}\t1", e.2, g.2));
    }
    let tsv = dir.path().join("aligned.tsv");
    std::fs::write(&tsv, lines.join("\n")).unwrap();
    let aligned = cosines(&run_records(model, &tsv, &["--cpu"]));
    let expected = aligned.iter().sum::<f64>() / aligned.len() as f64;
    let reported = files["test-de.tsv"]["consistency"]["alignment"]
        .as_f64()
        .unwrap();
    assert!(
        (reported - expected).abs() < 1e-5,
        "alignment {reported} expected {expected}"
    );
}

/// On the GPU, from a model folder and from a compiled .xltc, the numbers
/// are the CPU reference's.
#[test]
fn the_gpu_gives_the_cpu_references_numbers() {
    let model = model_dir("tiny-xlmr");
    let folder = data("pawsx");
    let report = tempfile::tempdir().unwrap();
    let out = report.path().join("r");
    let args = [
        model.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--pairs-matrix",
        "-o",
        out.to_str().unwrap(),
    ];
    let (cpu, _) = eval_json(&[&args[..], &["--cpu"]].concat());
    // The model folder (kernels lowered for each batch) and its compiled
    // artifact (the artifact's programs), both on the adapter.
    let artifact = report.path().join("tiny.xltc");
    ok(xltc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
        // Long enough for every input: a shorter bucket would truncate.
        "--max-seq",
        "128",
        "--batch",
        "4",
    ]));
    let mut compiled = args;
    compiled[0] = artifact.to_str().unwrap();
    for args in [args, compiled] {
        let output = xltc(&[&["eval", "--json"][..], &args[..]].concat());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("adapter"), "{stderr}");
        let mut files = 0;
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(file) = v["file"].as_str() {
                assert_eq!(v["accuracy"], cpu[file]["accuracy"], "{} {file}", args[0]);
                let alignment = |r: &Value| r["consistency"]["alignment"].as_f64();
                if let Some(expected) = alignment(&cpu[file]) {
                    let got = alignment(&v).unwrap();
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "{} {file}: alignment {got}",
                        args[0]
                    );
                }
                files += 1;
            }
        }
        assert_eq!(files, 4);
    }
}

#[test]
fn synonym_substitution_is_measured_on_english_and_reproducible() {
    let model = model_dir("tiny-xlmr");
    let folder = data("pawsx");
    let report = tempfile::tempdir().unwrap();
    let out = report.path().join("r");
    let base = [
        model.to_str().unwrap(),
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    let perturbed = |extra: &[&str]| {
        let (files, _) = eval_json(
            &[
                &base[..],
                &["--perturb", "synonyms", "--attack", "worst-of-k"],
                extra,
            ]
            .concat(),
        );
        files
    };
    let a = perturbed(&["--draws", "6", "--seed", "3"]);
    let b = perturbed(&["--draws", "6", "--seed", "3"]);
    let r = &a["test-en.tsv"]["robustness"];
    assert_eq!(
        r, &b["test-en.tsv"]["robustness"],
        "the same seed draws the same substitutions"
    );
    // The report names how many examples the substituted and attacked
    // consistency columns rest on, not only the clean count.
    let substituted = a["test-de.tsv"]["consistency"]["perturbed_pairs"]
        .as_u64()
        .unwrap();
    assert!(substituted > 0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let row: Vec<&str> = md
        .lines()
        .find(|l| l.starts_with("| de | ") && l.split('|').count() == 14)
        .unwrap_or_else(|| panic!("no consistency row for de in {md}"))
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(row[5], substituted.to_string(), "{md}");
    assert!(
        a["test-de.tsv"].get("robustness").is_none(),
        "German is never substituted"
    );
    let clean = a["test-en.tsv"]["accuracy"].as_f64().unwrap();
    assert!(approx(r["clean_accuracy"].as_f64().unwrap(), clean));
    assert!(r["words_replaced"].as_f64().unwrap() > 0.0, "{r}");
    // Two labels: the worst draw is right only when every draw is right.
    assert!(
        r["worst_of_k_accuracy"].as_f64().unwrap() <= r["perturbed_accuracy"].as_f64().unwrap()
    );
    // Synonym sets that hold no word of the data change nothing.
    let dir = tempfile::tempdir().unwrap();
    let sets = dir.path().join("sets.json");
    std::fs::write(&sets, r#"{"zebra": ["okapi"]}"#).unwrap();
    let none = perturbed(&["--synonyms", sets.to_str().unwrap()]);
    let r = &none["test-en.tsv"]["robustness"];
    assert!(approx(r["perturbed_accuracy"].as_f64().unwrap(), clean));
    assert!(approx(r["unchanged"].as_f64().unwrap(), 1.0));
    assert!(approx(r["words_replaced"].as_f64().unwrap(), 0.0));
    // Then every draw is the original, and so is the draw of lowest alignment.
    let c = &none["test-de.tsv"]["consistency"];
    let (worst, clean) = (c["worst_alignment"].as_f64(), c["alignment"].as_f64());
    assert!((worst.unwrap() - clean.unwrap()).abs() < 1e-9, "{c}");
}

/// Under --max-pairs each file keeps its own smallest ids, so a translation's
/// examples may lie outside the English test's selection: their English
/// originals are substituted all the same, and the English test's draws do not
/// depend on which translations are evaluated.
#[test]
fn every_translation_example_is_compared_with_substituted_english() {
    let model = model_dir("tiny-xlmr");
    let fixture = data("pawsx");
    let dir = tempfile::tempdir().unwrap();
    let english_only = dir.path().join("en");
    let both = dir.path().join("en-de");
    for folder in [&english_only, &both] {
        std::fs::create_dir(folder).unwrap();
        for name in ["test-en.tsv", "dev-en.tsv"] {
            std::fs::copy(fixture.join(name), folder.join(name)).unwrap();
        }
    }
    // German keeps only ids 6 and up: none of them is among English's first 4.
    let german = std::fs::read_to_string(fixture.join("test-de.tsv")).unwrap();
    let kept: Vec<&str> = german
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split('\t').next().unwrap().parse::<u32>().unwrap() >= 6)
        .map(|(_, l)| l)
        .collect();
    assert!(kept.len() > 5, "the fixture has German ids 6 and up");
    std::fs::write(both.join("test-de.tsv"), kept.join("\n") + "\n").unwrap();
    let run = |folder: &Path| {
        let out = dir.path().join("report");
        let (files, _) = eval_json(&[
            model.to_str().unwrap(),
            "--cpu",
            "--data",
            folder.to_str().unwrap(),
            "--max-pairs",
            "4",
            "--perturb",
            "synonyms",
            "--draws",
            "4",
            "--attack",
            "worst-of-k",
            "-o",
            out.to_str().unwrap(),
        ]);
        files
    };
    let alone = run(&english_only);
    let with_german = run(&both);
    assert_eq!(
        alone["test-en.tsv"]["robustness"], with_german["test-en.tsv"]["robustness"],
        "the English test's draws do not depend on the translations evaluated"
    );
    let c = &with_german["test-de.tsv"]["consistency"];
    assert_eq!(c["shared_pairs"].as_u64(), Some(4), "{c}");
    assert_eq!(
        c["perturbed_pairs"].as_u64(),
        Some(4),
        "every shared example is compared with substituted English: {c}"
    );
    for key in ["perturbed_agreement", "attacked_agreement"] {
        let v = c[key].as_f64().unwrap_or_else(|| panic!("no {key}: {c}"));
        assert!((0.0..=1.0).contains(&v), "{key} {v}");
    }
}

/// pairs.tsv, one row a test pair: its predictions are `xltc run`'s, its
/// English columns are the English test's predictions by id, and averaging
/// its columns gives every accuracy, substituted and attacked figure and
/// agreement and alignment of the report (so two runs can be compared pair
/// by pair on what the report counts).
#[test]
fn pairs_tsv_records_what_the_report_counts_pair_by_pair() {
    let model = model_dir("tiny-xlmr");
    let model = model.to_str().unwrap();
    let folder = data("pawsx");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (files, _) = eval_json(&[
        model,
        "--cpu",
        "--data",
        folder.to_str().unwrap(),
        "--pairs-matrix",
        "--perturb",
        "synonyms",
        "--draws",
        "3",
        "--attack",
        "worst-of-k",
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(out.join("pairs.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let rows: Vec<HashMap<&str, &str>> = lines
        .map(|l| header.iter().copied().zip(l.split('\t')).collect())
        .collect();
    let of = |file: &str| -> Vec<&HashMap<&str, &str>> {
        rows.iter().filter(|r| r["file"] == file).collect()
    };
    let number = |cell: &str| -> f64 { cell.parse().unwrap_or_else(|_| panic!("{cell:?}")) };
    let share = |values: Vec<bool>| {
        values.iter().filter(|&&v| v).count() as f64 / values.len().max(1) as f64
    };
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9, "{what}: {a} {b}");
    let labels = ["different", "paraphrase"];
    let mut english_class = HashMap::new();
    for name in [
        "test-en.tsv",
        "test-de.tsv",
        "test-en-de.tsv",
        "test-de-en.tsv",
    ] {
        let recorded = of(name);
        let plain = classifier_predictions(model, &folder.join(name), &labels, &["--cpu"]);
        assert_eq!(recorded.len(), plain.len(), "{name}: one row a pair");
        for (r, (id, predicted, gold)) in recorded.iter().zip(&plain) {
            assert_eq!(r["id"], id, "{name}: file order");
            assert_eq!(number(r["predicted"]) as usize, *predicted, "{name} {id}");
            assert_eq!(number(r["gold"]) as usize, *gold, "{name} {id}");
        }
        let accuracy = share(
            recorded
                .iter()
                .map(|r| r["predicted"] == r["gold"])
                .collect(),
        );
        close(accuracy, files[name]["accuracy"].as_f64().unwrap(), name);
        if name == "test-en.tsv" {
            english_class = plain.iter().map(|p| (p.0.clone(), p.1)).collect();
        }
    }
    // The English test: classes under each draw and under the worst one.
    let english = of("test-en.tsv");
    let robustness = &files["test-en.tsv"]["robustness"];
    let draws: Vec<bool> = english
        .iter()
        .flat_map(|r| {
            let substituted: Vec<&str> = r["substituted"].split(',').collect();
            assert_eq!(substituted.len(), 3, "{r:?}");
            substituted.into_iter().map(move |c| c == r["gold"])
        })
        .collect();
    close(
        share(draws),
        robustness["perturbed_accuracy"].as_f64().unwrap(),
        "perturbed accuracy",
    );
    close(
        share(english.iter().map(|r| r["worst"] == r["gold"]).collect()),
        robustness["worst_of_k_accuracy"].as_f64().unwrap(),
        "worst of k",
    );
    // The translation: its English original's class, clean and attacked,
    // and the alignment with it.
    let german = of("test-de.tsv");
    let consistency = &files["test-de.tsv"]["consistency"];
    for r in &german {
        assert_eq!(
            number(r["english"]) as usize,
            english_class[r["id"]],
            "{r:?}"
        );
    }
    for (column, figure) in [
        ("english", "agreement"),
        ("english_attacked", "attacked_agreement"),
    ] {
        close(
            share(german.iter().map(|r| r[column] == r["predicted"]).collect()),
            consistency[figure].as_f64().unwrap(),
            figure,
        );
    }
    for (column, figure) in [
        ("alignment", "alignment"),
        ("alignment_attacked", "attacked_alignment"),
    ] {
        let mean = german.iter().map(|r| number(r[column])).sum::<f64>() / german.len() as f64;
        let reported = consistency[figure].as_f64().unwrap();
        assert!(
            (mean - reported).abs() < 1e-6,
            "{figure}: {mean} {reported}"
        );
    }
    // The draw of lowest alignment: the pooled figure is the mean of the
    // rows', no row's is above its attacked draw's (that draw is one of the
    // three) and the mean is not above the mean over every draw; on some
    // row the draw that hurts the class is not the one that moves the
    // embeddings most (else the column would say nothing new).
    let worst: Vec<f64> = german
        .iter()
        .map(|r| number(r["alignment_worst"]))
        .collect();
    let reported = consistency["worst_alignment"].as_f64().unwrap();
    let mean = worst.iter().sum::<f64>() / worst.len() as f64;
    assert!(
        (mean - reported).abs() < 1e-6,
        "worst alignment: {mean} {reported}"
    );
    assert!(reported <= consistency["perturbed_alignment"].as_f64().unwrap() + 1e-6);
    for (r, w) in german.iter().zip(&worst) {
        assert!(*w <= number(r["alignment_attacked"]) + 1e-6, "{r:?}");
    }
    assert!(
        german
            .iter()
            .zip(&worst)
            .any(|(r, w)| *w < number(r["alignment_attacked"]) - 1e-4),
        "{german:?}"
    );
    // Retrieval: each row's count of its two sentences, 0 to 2, gives the
    // file's figures, clean and on the draw of lowest alignment; some of
    // the tiny test files' translations are retrieved.
    for (column, figure) in [
        ("retrieved", "retrieval"),
        ("retrieved_worst", "worst_retrieval"),
    ] {
        let counts: Vec<f64> = german.iter().map(|r| number(r[column])).collect();
        assert!(
            counts.iter().all(|&c| [0.0, 1.0, 2.0].contains(&c)),
            "{counts:?}"
        );
        let mean = counts.iter().sum::<f64>() / (2 * counts.len()) as f64;
        let reported = consistency[figure].as_f64().unwrap();
        assert!(
            (mean - reported).abs() < 1e-9,
            "{figure}: {mean} {reported}"
        );
    }
    let clean = consistency["retrieval"].as_f64().unwrap();
    assert!(clean > 0.0 && clean <= 1.0, "retrieval {clean}");
    // Columns that do not apply to a file stay empty.
    for r in of("test-en-de.tsv").iter().chain(&english) {
        assert_eq!(r["english"], "", "{r:?}");
        assert_eq!(r["alignment"], "", "{r:?}");
        assert_eq!(r["alignment_worst"], "", "{r:?}");
        assert_eq!(r["retrieved"], "", "{r:?}");
        assert_eq!(r["retrieved_worst"], "", "{r:?}");
    }
    for r in &german {
        assert_eq!(r["substituted"], "", "{r:?}");
    }
}

#[test]
fn the_word_overlap_baseline_needs_no_model() {
    let folder = data("pawsx");
    let report = tempfile::tempdir().unwrap();
    let out = report.path().join("r");
    let (files, averages) = eval_json(&[
        "--baseline",
        "word-overlap",
        "--data",
        folder.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(averages["threshold"].as_f64().is_some());
    let accuracy = files["test-en.tsv"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
}

/// Each bad input: a non-zero exit, an error naming the file (and line), no report.
#[test]
fn bad_data_names_the_file_and_line_and_leaves_no_report() {
    let model = model_dir("tiny-xlmr");
    let encoder = tiny_encoder();
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "test-en.tsv",
            "id\tsentence1\tsentence2\tlabel\n0\ta b\tc d\t1\n1\tonly two\t0\n",
            "test-en.tsv line 3: expected 4",
            "classifier",
        ),
        (
            "test-en.tsv",
            "a b\tc d\tmaybe\n",
            "test-en.tsv line 1: label \"maybe\"",
            "classifier",
        ),
        ("test-en.tsv", "", "test-en.tsv: no examples", "classifier"),
        (
            "test-en.tsv",
            "a b\tc d\t1\n",
            "dev-en.tsv: missing",
            "encoder",
        ),
    ];
    for (file, content, expected, which) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), content).unwrap();
        let out = dir.path().join("report");
        let model = if which == "encoder" {
            encoder.path().to_owned()
        } else {
            model.clone()
        };
        let output = xltc(&[
            "eval",
            model.to_str().unwrap(),
            "--cpu",
            "--data",
            dir.path().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{expected}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(!out.exists(), "a failed evaluation left a report");
    }
    let empty = tempfile::tempdir().unwrap();
    let output = xltc(&[
        "eval",
        model.to_str().unwrap(),
        "--cpu",
        "--data",
        empty.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no test files"));
}

/// The smoothed classifier under noise far below the model's resolution
/// (sigma 1e-7): every one of N draws votes for the plain prediction, so
/// nothing abstains, accuracy is the plain classifier's, and every
/// certificate has the closed form of a unanimous vote: Clopper-Pearson's
/// bound is alpha^(1/N), the radius sigma PhiInverse(alpha^(1/N)), so
/// certified accuracy is the plain accuracy up to that radius and 0 past
/// it. On the CPU reference, on the GPU and from an artifact alike; the
/// report says how it voted and plots certified accuracy. (Split votes and
/// abstentions: the unit tests of evaluate::smoothing and certify.)
#[test]
fn smoothing_votes_and_certificates_match_a_plain_computation() {
    let model = model_dir("tiny-xlmr");
    let folder = data("pawsx");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let plain = |extra: &[&str]| {
        eval_json(
            &[
                &[
                    model.to_str().unwrap(),
                    "--data",
                    folder.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                    "--cpu",
                    "--pairs-matrix",
                ][..],
                extra,
            ]
            .concat(),
        )
        .0
    };
    let clean = plain(&[]);
    let (draws, sigma, alpha) = (12u32, 1e-7f64, 0.01f64);
    // The radius of a unanimous vote, by bisection on the normal's distribution.
    let bound = alpha.powf(1.0 / draws as f64);
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 0.5 * libm::erfc(-mid / std::f64::consts::SQRT_2) < bound {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let radius = sigma * lo;
    let smooth = [
        "--smooth",
        "12",
        "--sigma",
        "1e-7",
        "--alpha",
        "0.01",
        "--certify",
        "--batch",
        "5",
        "--pairs-matrix",
    ];
    let artifact = dir.path().join("tiny.xltc");
    ok(xltc(&[
        "compile",
        model.to_str().unwrap(),
        "-o",
        artifact.to_str().unwrap(),
        "--max-seq",
        "32",
    ]));
    for (engine, path, device) in [
        ("cpu", &model, Some("--cpu")),
        ("gpu", &model, None),
        ("artifact", &artifact, None),
    ] {
        let mut args = vec![
            "eval",
            path.to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend(&smooth);
        args.extend(device);
        ok(xltc(&args));
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let e = &report["evaluation"];
        assert!(e["decision"]
            .as_str()
            .unwrap()
            .contains("majority vote over 12 draws"));
        let files = e["smoothing"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 5, "{engine}: dev and four test files");
        for f in files {
            let name = f["file"].as_str().unwrap();
            assert_eq!(f["abstained"], 0, "{engine} {name}");
            let certified = f["certified"].as_array().unwrap();
            assert_eq!(certified.len(), 17);
            let plain_accuracy = match clean.get(name) {
                Some(v) => v["accuracy"].as_f64().unwrap(),
                None => e["dev"]["accuracy"].as_f64().unwrap(),
            };
            for point in certified {
                let (r, share) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
                let expected = if r <= radius * (1.0 - 1e-9) {
                    plain_accuracy
                } else {
                    0.0
                };
                assert!(
                    approx(share, expected),
                    "{engine} {name}: at radius {r} ({radius} certified) {share} vs {expected}"
                );
            }
            // Every prediction: unanimous votes, the closed-form radius.
            let predictions = f["predictions"].as_array().unwrap();
            assert_eq!(predictions.len() as u64, f["pairs"].as_u64().unwrap());
            for p in predictions {
                let votes: Vec<u64> = p["votes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                assert_eq!(votes.iter().sum::<u64>(), draws as u64);
                assert!(votes.contains(&(draws as u64)), "{engine} {name}: {p}");
                let (class, r) = (
                    p["certified"][0].as_u64().unwrap(),
                    p["certified"][1].as_f64().unwrap(),
                );
                assert_eq!(Some(class), p["predicted"].as_u64());
                assert!(
                    (r - radius).abs() <= 1e-9 * radius,
                    "{engine} {name}: {r} vs {radius}"
                );
            }
            if let Some(v) = clean.get(name) {
                let smoothed = e["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["file"] == name)
                    .unwrap();
                assert_eq!(smoothed["accuracy"], v["accuracy"], "{engine} {name}");
            }
        }
        let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(markdown.contains("## Randomized smoothing"), "{markdown}");
        let svg = std::fs::read_to_string(out.join("certified.svg")).unwrap();
        assert!(svg.contains("<polyline"));
    }
    // Flags that make no sense are refused.
    for (flags, message) in [
        (
            vec!["--sigma", "1"],
            "--sigma and --certify are settings of --smooth N",
        ),
        (vec!["--smooth", "5"], "--smooth needs --sigma"),
        (
            vec![
                "--smooth",
                "5",
                "--sigma",
                "1",
                "--noise",
                "uniform",
                "--certify",
            ],
            "--certify holds for Gaussian noise only",
        ),
    ] {
        let output = xltc(
            &[
                &[
                    "eval",
                    model.to_str().unwrap(),
                    "--data",
                    folder.to_str().unwrap(),
                    "--cpu",
                ][..],
                &flags[..],
            ]
            .concat(),
        );
        assert!(!output.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}
