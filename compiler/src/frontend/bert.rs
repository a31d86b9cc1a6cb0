//! BERT (mBERT, MiniLM, and BERT-shaped models such as multilingual-e5):
//! tensors below "bert." (or no prefix for a bare BertModel), and the
//! BertForSequenceClassification head: pooler (dense + tanh on the first
//! token), then the classifier.

use crate::ir::{Graph, Op, ValueId};

use super::checkpoint::{Checkpoint, Expected};
use super::config::ModelConfig;
use super::encoder::{encoder_tensors, linear_specs, Dropout, Weights};

pub const PREFIX: &str = "bert.";

pub fn expected(config: &ModelConfig, prefix: &str) -> Expected {
    let mut required = encoder_tensors(config, prefix);
    let pooler = linear_specs(
        &format!("{prefix}pooler.dense"),
        config.hidden,
        config.hidden,
    );
    let mut optional = Vec::new();
    if config.has_classifier() {
        required.extend(pooler);
        required.extend(linear_specs(
            "classifier",
            config.labels.len(),
            config.hidden,
        ));
    } else {
        optional.extend(pooler.map(|s| s.name));
    }
    Expected {
        required,
        optional,
        ignored_prefixes: vec![
            format!("{prefix}embeddings.position_ids"),
            "cls.".to_owned(),
        ],
    }
}

/// Logits [batch, labels] from the last hidden state.
pub fn classifier_forward(
    g: &mut Graph,
    checkpoint: &Checkpoint,
    prefix: &str,
    hidden: ValueId,
    dropout: (&mut Dropout, f32),
) -> ValueId {
    let encoder = Weights { checkpoint, prefix };
    let head = Weights {
        checkpoint,
        prefix: "",
    };
    let first = g.op("pooler.first_token", Op::FirstToken { x: hidden });
    let pooled = encoder.linear(g, first, "pooler.dense");
    let pooled = g.op("pooler.tanh", Op::Tanh { x: pooled });
    let pooled = dropout.0.apply(g, pooled, dropout.1, "classifier");
    head.linear(g, pooled, "classifier")
}
