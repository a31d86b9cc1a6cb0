//! The front end: a Hugging Face model folder (model.safetensors, config.json,
//! tokenizer.json), or the model inside a compiled artifact, checked tensor by
//! tensor and turned into a graph of IR ops with static batch and sequence
//! length.

pub mod bert;
mod checkpoint;
mod config;
mod encoder;
mod error;
mod model_dir;
pub mod xlm_roberta;

use std::path::{Path, PathBuf};

use xltc_runtime::artifact::{Artifact, ModelInfo};
use xltc_runtime::PositionScheme;

use crate::ir::{AlignmentLoss, Graph, Input, Op};

pub use checkpoint::{Checkpoint, Tensor};
pub use config::{Family, ModelConfig};
pub use error::FrontendError;
pub use model_dir::ModelFiles;
/// What the graph gives for each sequence besides its last hidden state:
/// "logits" and "probabilities" from the classification head, or
/// "sentence_embedding" (the mean over real tokens, as sentence-transformers
/// pools, L2-normalised when the model says so).
pub use xltc_runtime::artifact::OutputKind as ModelOutput;

/// A checked model, ready to be built into graphs of any batch and length.
#[derive(Debug)]
pub struct Model {
    /// The model folder's name, or the name recorded in an artifact.
    pub name: String,
    /// Where the model was read from, for messages.
    pub origin: PathBuf,
    pub config: ModelConfig,
    pub config_json: String,
    pub tokenizer_json: String,
    pub output: ModelOutput,
    checkpoint: Checkpoint,
    /// "bert.", "roberta." or "" for a bare encoder saved on its own.
    prefix: String,
    /// The tensors the graph reads, in checkpoint order.
    weight_names: Vec<String>,
}

impl Model {
    /// Reads a model folder, or the model.safetensors inside one.
    pub fn load(path: &Path) -> Result<Self, FrontendError> {
        let files = ModelFiles::locate(path)?;
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| FrontendError::Read {
                path: p.to_owned(),
                source,
            })
        };
        let config_json = read(&files.config)?;
        let config = ModelConfig::parse(&files.config, &config_json)?;
        let normalize = normalizes(&files)?;
        let checkpoint = Checkpoint::read(&files.weights)?;
        let name = files
            .folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        Self::assemble(Parts {
            name: name.unwrap_or_else(|| "model".into()),
            origin: files.folder.clone(),
            config,
            config_json,
            tokenizer_json: read(&files.tokenizer)?,
            checkpoint,
            normalize,
        })
    }

    /// The model a compiled artifact carries: same config, tokenizer and weights.
    pub fn from_artifact(origin: &Path, artifact: &Artifact) -> Result<Self, FrontendError> {
        let info = &artifact.manifest.model;
        let config = ModelConfig::parse(origin, &info.config_json)?;
        let checkpoint = Checkpoint::from_bytes(origin, &artifact.weights)?;
        Self::assemble(Parts {
            name: info.name.clone(),
            origin: origin.to_owned(),
            config,
            config_json: info.config_json.clone(),
            tokenizer_json: artifact.manifest.tokenizer_json.clone(),
            checkpoint,
            normalize: matches!(
                info.output,
                ModelOutput::SentenceEmbedding { normalize: true }
            ),
        })
    }

    fn assemble(parts: Parts) -> Result<Self, FrontendError> {
        let Parts {
            name,
            origin,
            config,
            config_json,
            tokenizer_json,
            checkpoint,
            normalize,
        } = parts;
        let family_prefix = match config.family {
            Family::Bert => bert::PREFIX,
            Family::Roberta => xlm_roberta::PREFIX,
        };
        let with_prefix = format!("{family_prefix}embeddings.word_embeddings.weight");
        let prefix = if checkpoint.has(&with_prefix) {
            family_prefix
        } else {
            ""
        };
        let expected = match config.family {
            Family::Bert => bert::expected(&config, prefix),
            Family::Roberta => xlm_roberta::expected(&config, prefix),
        };
        checkpoint.validate(&expected, &config.architecture)?;
        let output = if config.has_classifier() {
            ModelOutput::Classification
        } else {
            ModelOutput::SentenceEmbedding { normalize }
        };
        Ok(Self {
            name,
            origin,
            config,
            config_json,
            tokenizer_json,
            output,
            checkpoint,
            prefix: prefix.to_owned(),
            weight_names: expected.required.into_iter().map(|s| s.name).collect(),
        })
    }

    pub fn position_scheme(&self) -> PositionScheme {
        match self.config.family {
            Family::Bert => PositionScheme::FromZero,
            Family::Roberta => PositionScheme::AfterPadding {
                padding_idx: self.config.pad_token_id,
            },
        }
    }

    /// The longest sequence (special tokens included) the position table allows.
    pub fn max_tokens(&self) -> usize {
        let overhead = self.position_scheme().positions_needed(0);
        self.config.max_positions.saturating_sub(overhead)
    }

    /// The checkpoint's f32 tensors.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Drops the host copy of the weights, once a runtime session holds
    /// them on the GPU (`Session::upload_weights`): the model then builds
    /// no graph and gives no weight.
    pub fn drop_weights(&mut self) {
        self.checkpoint.drop_data();
    }

    /// A weight the graph reads, by checkpoint name.
    pub fn weight(&self, name: &str) -> Option<&[f32]> {
        self.checkpoint.get(name).map(|t| &t.data[..])
    }

    /// The weights the graph reads, as a safetensors file.
    pub fn weights_safetensors(&self) -> Vec<u8> {
        self.checkpoint.to_safetensors(&self.weight_names)
    }

    /// What an artifact records of the model.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            architecture: self.config.architecture.clone(),
            config_json: self.config_json.clone(),
            output: self.output,
            labels: self.config.labels.clone(),
            pad_token_id: self.config.pad_token_id,
            positions: self.position_scheme(),
            max_tokens: self.max_tokens(),
        }
    }

    /// The training graph's forward for `batch` sequences of `seq` tokens
    /// of a sequence classifier: the encoder with `word_embedding_delta`
    /// added to the word embeddings, dropout where transformers applies it
    /// in training (when `dropout`; keyed by the `dropout_key` input), the
    /// head's logits, and the loss (softmax cross-entropy, the mean over real
    /// examples). Without dropout the graph computes what transformers
    /// computes in eval mode. `passes::autodiff` adds the backward.
    pub fn training_graph(
        &self,
        batch: usize,
        seq: usize,
        dropout: bool,
    ) -> Result<Graph, FrontendError> {
        if self.output != ModelOutput::Classification {
            return Err(FrontendError::NotAClassifier {
                model: self.origin.clone(),
            });
        }
        let mut g = Graph::new(batch, seq);
        let mut sites = if dropout {
            encoder::Dropout::on(&mut g)
        } else {
            encoder::Dropout::off()
        };
        let hidden = self.encoder(&mut g, true, &mut sites);
        let logits = self.classifier(&mut g, hidden, &mut sites);
        let labels = g.input(Input::Labels);
        let example_mask = g.input(Input::ExampleMask);
        let loss = g.op(
            "loss",
            Op::CrossEntropy {
                logits,
                labels,
                example_mask,
            },
        );
        g.mark_output("loss", loss);
        g.mark_output("logits", logits);
        Ok(g)
    }

    /// The alignment graph of `pairs` sentences and their translations,
    /// each of up to `seq` tokens: 2 x `pairs` rows (the sentences, then
    /// their translations in the same order) through the encoder (with
    /// `word_embedding_delta`, and dropout when `dropout`), the mean of each
    /// row's last hidden states over its real tokens, and the loss
    /// [`Op::Alignment`] of those means, measured as `loss` says; a loss on
    /// the head ([`AlignmentLoss::on_head`]) measures the classifier's
    /// logits instead, and its rows are pairs and their translated versions.
    /// `passes::autodiff` adds the backward.
    pub fn alignment_graph(
        &self,
        pairs: usize,
        seq: usize,
        dropout: bool,
        loss: AlignmentLoss,
    ) -> Graph {
        let mut g = Graph::new(2 * pairs, seq);
        let mut sites = if dropout {
            encoder::Dropout::on(&mut g)
        } else {
            encoder::Dropout::off()
        };
        let hidden = self.encoder(&mut g, true, &mut sites);
        let x = if loss.on_head() {
            self.classifier(&mut g, hidden, &mut sites)
        } else {
            let mask = g.input(Input::AttentionMask);
            g.op("alignment.mean", Op::MeanPool { x: hidden, mask })
        };
        let example_mask = g.input(Input::ExampleMask);
        let loss = g.op(
            "loss",
            Op::Alignment {
                x,
                example_mask,
                loss,
            },
        );
        g.mark_output("loss", loss);
        g
    }

    fn encoder(
        &self,
        g: &mut Graph,
        perturbable: bool,
        dropout: &mut encoder::Dropout,
    ) -> crate::ir::ValueId {
        let weights = encoder::Weights {
            checkpoint: &self.checkpoint,
            prefix: &self.prefix,
        };
        encoder::encoder_forward(g, &weights, &self.config, perturbable, dropout)
    }

    fn classifier(
        &self,
        g: &mut Graph,
        hidden: crate::ir::ValueId,
        dropout: &mut encoder::Dropout,
    ) -> crate::ir::ValueId {
        let p = self.config.classifier_dropout;
        match self.config.family {
            Family::Bert => {
                bert::classifier_forward(g, &self.checkpoint, &self.prefix, hidden, (dropout, p))
            }
            Family::Roberta => {
                xlm_roberta::classifier_forward(g, &self.checkpoint, hidden, (dropout, p))
            }
        }
    }

    /// The forward graph for `batch` sequences of `seq` tokens.
    pub fn graph(&self, batch: usize, seq: usize) -> Graph {
        self.graph_with(batch, seq, false)
    }

    /// [`Model::graph`] with the input `word_embedding_delta` added to the
    /// gathered word embeddings: what a smoothed classifier runs under noise.
    pub fn perturbable_graph(&self, batch: usize, seq: usize) -> Graph {
        self.graph_with(batch, seq, true)
    }

    fn graph_with(&self, batch: usize, seq: usize, perturbable: bool) -> Graph {
        let mut g = Graph::new(batch, seq);
        let mut off = encoder::Dropout::off();
        let hidden = self.encoder(&mut g, perturbable, &mut off);
        g.mark_output("last_hidden_state", hidden);
        match self.output {
            ModelOutput::Classification => {
                let logits = self.classifier(&mut g, hidden, &mut off);
                let probs = g.op("probabilities", Op::Softmax { x: logits });
                g.mark_output("logits", logits);
                g.mark_output("probabilities", probs);
            }
            ModelOutput::SentenceEmbedding { normalize } => {
                let mask = g.input(Input::AttentionMask);
                let mut pooled = g.op("pooling.mean", Op::MeanPool { x: hidden, mask });
                if normalize {
                    pooled = g.op("pooling.normalize", Op::L2Normalize { x: pooled });
                }
                g.mark_output("sentence_embedding", pooled);
            }
        }
        g
    }

    /// The name of the graph output that a prediction reads.
    pub fn prediction_output(&self) -> &'static str {
        match self.output {
            ModelOutput::Classification => "logits",
            ModelOutput::SentenceEmbedding { .. } => "sentence_embedding",
        }
    }
}

struct Parts {
    name: String,
    origin: PathBuf,
    config: ModelConfig,
    config_json: String,
    tokenizer_json: String,
    checkpoint: Checkpoint,
    normalize: bool,
}

/// Whether sentence-transformers' modules.json ends the pipeline with Normalize.
fn normalizes(files: &ModelFiles) -> Result<bool, FrontendError> {
    let Some(path) = &files.modules else {
        return Ok(false);
    };
    let text = std::fs::read_to_string(path).map_err(|source| FrontendError::Read {
        path: path.clone(),
        source,
    })?;
    let modules: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| FrontendError::Json {
            path: path.clone(),
            source,
        })?;
    let types = modules
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["type"].as_str());
    let types: Vec<&str> = types.collect();
    if types.iter().any(|t| t.ends_with("Pooling")) {
        check_mean_pooling(files)?;
    }
    Ok(types.iter().any(|t| t.ends_with("Normalize")))
}

/// xltc pools by the mean; a model whose 1_Pooling/config.json asks for
/// something else would give wrong embeddings, so it is refused.
fn check_mean_pooling(files: &ModelFiles) -> Result<(), FrontendError> {
    let path = files.folder.join("1_Pooling").join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| FrontendError::Json {
            path: path.clone(),
            source,
        })?;
    if json["pooling_mode_mean_tokens"].as_bool() == Some(false) {
        return Err(FrontendError::Config {
            path,
            message: "only mean pooling (pooling_mode_mean_tokens) is supported".into(),
        });
    }
    Ok(())
}
