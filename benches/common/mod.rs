//! What the benchmarks share: the GPU, timing, random data, and a BERT-base-
//! shaped model folder with random weights written to a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use xltc_runtime::Gpu;

pub fn gpu() -> Gpu {
    let gpu = Gpu::new_blocking().unwrap_or_else(|e| panic!("benchmarks need a GPU adapter: {e}"));
    println!("adapter: {}", gpu.adapter);
    gpu
}

/// The comma-separated numbers of environment variable `name`, or `default`.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// PyTorch's time for a BERT-base-shaped model on the CPU, from
/// benches/torch_peer.py: the median seconds of a forward pass of BertModel,
/// or with `train` of a training step of BertForSequenceClassification.
/// None where python3, torch or transformers is missing.
pub fn torch_time(
    train: bool,
    batch: usize,
    seq: usize,
    layers: usize,
    runs: usize,
) -> Option<Duration> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/torch_peer.py");
    let numbers = [batch, seq, layers, runs].map(|n| n.to_string());
    let mut command = Command::new("python3");
    command.arg(script);
    for (flag, value) in ["--batch", "--seq", "--layers", "--runs"]
        .iter()
        .zip(&numbers)
    {
        command.args([flag, value.as_str()]);
    }
    if train {
        command.arg("--train");
    }
    let output = command.output().ok()?;
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(seconds))
}

/// The median of `runs` timings of `f`, after one warm-up run.
pub fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

pub fn random_floats(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Shapes of an encoder to benchmark.
#[derive(Clone, Copy)]
pub struct EncoderShape {
    pub model_type: &'static str,
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub pad_token_id: u32,
    /// Labels of a sequence-classification head (Hugging Face's, with its
    /// pooler for BERT); 0 writes a bare encoder.
    pub labels: usize,
}

pub const BERT_BASE: EncoderShape = EncoderShape {
    model_type: "bert",
    vocab: 30_522,
    hidden: 768,
    layers: 12,
    heads: 12,
    intermediate: 3072,
    max_positions: 512,
    pad_token_id: 0,
    labels: 0,
};

pub const XLMR_BASE: EncoderShape = EncoderShape {
    model_type: "xlm-roberta",
    vocab: 250_002,
    hidden: 768,
    layers: 12,
    heads: 12,
    intermediate: 3072,
    max_positions: 514,
    pad_token_id: 1,
    labels: 0,
};

/// Writes a bare encoder of `shape` with random weights (config.json,
/// model.safetensors, and the tiny BERT's tokenizer.json, unused by the
/// benchmarks) into `dir`.
pub fn write_random_encoder(dir: &Path, shape: &EncoderShape) -> PathBuf {
    let (h, ff) = (shape.hidden, shape.intermediate);
    let prefix = if shape.model_type == "bert" {
        "bert."
    } else {
        "roberta."
    };
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        (
            format!("{prefix}embeddings.word_embeddings.weight"),
            vec![shape.vocab, h],
        ),
        (
            format!("{prefix}embeddings.position_embeddings.weight"),
            vec![shape.max_positions, h],
        ),
        (
            format!("{prefix}embeddings.token_type_embeddings.weight"),
            vec![2, h],
        ),
        (format!("{prefix}embeddings.LayerNorm.weight"), vec![h]),
        (format!("{prefix}embeddings.LayerNorm.bias"), vec![h]),
    ];
    for l in 0..shape.layers {
        let p = format!("{prefix}encoder.layer.{l}.");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", ff, h),
            ("output.dense", h, ff),
        ] {
            specs.push((format!("{p}{name}.weight"), vec![out, inp]));
            specs.push((format!("{p}{name}.bias"), vec![out]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            specs.push((format!("{p}{name}.weight"), vec![h]));
            specs.push((format!("{p}{name}.bias"), vec![h]));
        }
    }
    if shape.labels > 0 {
        let head: [(&str, usize); 2] = if shape.model_type == "bert" {
            [("bert.pooler.dense", h), ("classifier", shape.labels)]
        } else {
            [
                ("classifier.dense", h),
                ("classifier.out_proj", shape.labels),
            ]
        };
        for (name, rows) in head {
            specs.push((format!("{name}.weight"), vec![rows, h]));
            specs.push((format!("{name}.bias"), vec![rows]));
        }
    }
    let data: Vec<Vec<f32>> = specs
        .iter()
        .enumerate()
        .map(|(i, (name, s))| {
            let n = s.iter().product();
            if name.ends_with("LayerNorm.weight") {
                vec![1.0; n]
            } else {
                random_floats(n, i as u64 + 1, 0.05)
            }
        })
        .collect();
    let views: Vec<(String, TensorView)> = specs
        .iter()
        .zip(&data)
        .map(|((name, s), d)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, s.clone(), bytemuck::cast_slice(d)).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let architecture = match (shape.model_type, shape.labels > 0) {
        ("bert", false) => "BertModel",
        ("bert", true) => "BertForSequenceClassification",
        (_, false) => "XLMRobertaModel",
        (_, true) => "XLMRobertaForSequenceClassification",
    };
    let mut config = serde_json::json!({
        "architectures": [architecture],
        "model_type": shape.model_type,
        "vocab_size": shape.vocab,
        "hidden_size": h,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": ff,
        "max_position_embeddings": shape.max_positions,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "pad_token_id": shape.pad_token_id,
    });
    if shape.labels > 0 {
        config["num_labels"] = shape.labels.into();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/tiny-bert/tokenizer.json");
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
    dir.to_owned()
}

/// `batch` random pairs of exactly `seq` tokens (the first half sentence
/// one), ids drawn from `seed`, labels alternating.
pub fn random_examples(batch: usize, seq: usize, seed: u64) -> Vec<xltc::train::Example> {
    (0..batch)
        .map(|row| {
            let draws = random_floats(seq, row as u64 + seed, 1.0);
            xltc::train::Example {
                encoding: xltc_runtime::Encoding {
                    ids: draws
                        .iter()
                        .map(|v| ((v.abs() * 20_000.0) as u32).max(5))
                        .collect(),
                    type_ids: (0..seq).map(|i| u32::from(i >= seq / 2)).collect(),
                },
                label: (row % 2) as u32,
            }
        })
        .collect()
}
