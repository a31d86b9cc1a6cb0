//! Everything that can be wrong with a model a user hands to the front end.
//! Each error names the file, and the tensor or field, that is wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("{path}: no such file or folder")]
    NotFound { path: PathBuf },
    #[error(
        "{path}: missing; a model is a folder with model.safetensors, config.json and \
         tokenizer.json (Hugging Face layout)"
    )]
    MissingFile { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "{path}: unsupported architecture {what}; xltc compiles BERT (model_type \"bert\") and \
         XLM-R / RoBERTa (\"xlm-roberta\", \"roberta\") encoders, bare or with a \
         sequence-classification head"
    )]
    UnsupportedArchitecture { path: PathBuf, what: String },
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: tensor {name} is missing (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor {name} has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{path}: tensor {name} has dtype {dtype}; weights must be F32, F16, BF16 or F64")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error(
        "{path}: unexpected tensor {name} ({count} unexpected in all) for a {architecture}; \
         is config.json the one that belongs to this checkpoint?"
    )]
    UnexpectedTensor {
        path: PathBuf,
        name: String,
        count: usize,
        architecture: String,
    },
    #[error(
        "{model}: has no classification head, so there is no loss to train; \
         a head is added by training from an encoder (not yet supported)"
    )]
    NotAClassifier { model: PathBuf },
}
