//! What the cross-crate tests share: where fixtures and fetched models are,
//! and how a golden fixture is read.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// The adapter wgpu finds (lavapipe on machines without a GPU), made once
/// a test binary; none is a failure, never a skip.
pub fn gpu() -> &'static xltc_runtime::Gpu {
    static GPU: OnceLock<xltc_runtime::Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = xltc_runtime::Gpu::new_blocking()
            .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        eprintln!("adapter: {}", gpu.adapter);
        gpu
    })
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests").join("fixtures")
}

/// A model folder: a committed tiny model, or a real one fetched by models/fetch.py.
/// A missing real model fails the test (it never skips), saying how to get it.
pub fn model_dir(name: &str) -> PathBuf {
    let committed = fixtures().join("models").join(name);
    if committed.is_dir() {
        return committed;
    }
    let cache = std::env::var_os("XLTC_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models").join("cache"));
    let fetched = cache.join(name);
    assert!(
        fetched.join("model.safetensors").is_file(),
        "model {name} is not in {}; run `python3 models/fetch.py` first",
        cache.display()
    );
    fetched
}

pub const MODELS: [&str; 4] = [
    "tiny-bert",
    "tiny-xlmr",
    "all-minilm-l6-v2",
    "multilingual-e5-small",
];

/// An array from a golden fixture, as f64 whatever its stored dtype.
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

pub struct Golden {
    pub arrays: HashMap<String, Array>,
    pub metadata: HashMap<String, String>,
}

impl Golden {
    pub fn read(model: &str) -> Golden {
        let path = fixtures()
            .join("golden")
            .join(format!("{model}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let arrays = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data = match view.dtype() {
                    Dtype::F32 => view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                        .collect(),
                    Dtype::I64 => view
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                        .collect(),
                    other => panic!("{name}: unexpected dtype {other:?}"),
                };
                (
                    name,
                    Array {
                        shape: view.shape().to_vec(),
                        data,
                    },
                )
            })
            .collect();
        Golden {
            arrays,
            metadata: meta.metadata().clone().unwrap_or_default(),
        }
    }

    pub fn array(&self, name: &str) -> &Array {
        self.arrays
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    }

    pub fn texts(&self, key: &str) -> Option<Vec<String>> {
        serde_json::from_str(&self.metadata[key]).unwrap()
    }
}

/// max |actual - expected| / max |expected|: the error relative to the
/// tensor's scale, so that values near zero do not dominate.
pub fn relative_error(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(
        actual.len(),
        expected.len(),
        "compared tensors differ in size"
    );
    xltc::reference::relative_error(actual, expected)
}

/// The rows of the multilingual test set: (lang, sentence1, sentence2).
pub fn multilingual_rows() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(fixtures().join("multilingual.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

/// A writable copy of a model folder.
pub fn model_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir(name).join(file), dir.path().join(file)).unwrap();
    }
    dir
}

/// (name, dtype, shape, bytes) of every tensor in a safetensors file.
pub type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

pub fn read_tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

pub fn write_tensors(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::tensor::serialize(views, None::<HashMap<String, String>>).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Rewrites a model folder's model.safetensors through `edit`.
pub fn edit_tensors(dir: &Path, edit: impl FnOnce(&mut Tensors)) {
    let path = dir.join("model.safetensors");
    let mut tensors = read_tensors(&path);
    edit(&mut tensors);
    write_tensors(&path, &tensors);
}

/// Rewrites a model folder's config.json through `edit`.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, config.to_string()).unwrap();
}

/// The "probabilities" of one JSON record of `xltc run --json` (or of the
/// browser page's report).
pub fn probabilities(record: &serde_json::Value) -> Vec<f64> {
    let probs = record["probabilities"].as_array().expect("probabilities");
    probs
        .iter()
        .map(|p| p.as_f64().expect("a number"))
        .collect()
}

/// Softmax of logits, in f64.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
    logits.iter().map(|l| (l - max).exp() / sum).collect()
}

/// Writes `text<TAB>pair` lines to dir/pairs.tsv, the input file of `xltc run --file`.
pub fn write_pairs_tsv(dir: &Path, texts: &[String], pairs: &[String]) -> PathBuf {
    let path = dir.join("pairs.tsv");
    let lines: Vec<String> = texts
        .iter()
        .zip(pairs)
        .map(|(t, p)| format!("{t}\t{p}"))
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// Eight labelled pairs of the tiny models' ids, of lengths 6 to 27, labels
/// alternating: a training group for the trainer's tests.
pub fn training_examples() -> Vec<xltc::train::Example> {
    (0..8)
        .map(|i| {
            let len = 6 + 3 * i;
            xltc::train::Example {
                encoding: xltc_runtime::Encoding {
                    ids: (0..len)
                        .map(|t| 5 + ((t * 7 + i * 13) % 40) as u32)
                        .collect(),
                    type_ids: vec![0; len],
                },
                label: (i % 2) as u32,
            }
        })
        .collect()
}
