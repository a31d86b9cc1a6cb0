//! XLM-R and RoBERTa: tensors below "roberta." (or none for a bare model),
//! position ids that start at padding_idx + 1, and the
//! XLMRobertaForSequenceClassification head: dense + tanh on the first token,
//! then out_proj. No pooler.

use crate::ir::{Graph, Op, ValueId};

use super::checkpoint::{Checkpoint, Expected};
use super::config::ModelConfig;
use super::encoder::{encoder_tensors, linear_specs, Dropout, Weights};

pub const PREFIX: &str = "roberta.";

pub fn expected(config: &ModelConfig, prefix: &str) -> Expected {
    let mut required = encoder_tensors(config, prefix);
    if config.has_classifier() {
        required.extend(linear_specs(
            "classifier.dense",
            config.hidden,
            config.hidden,
        ));
        required.extend(linear_specs(
            "classifier.out_proj",
            config.labels.len(),
            config.hidden,
        ));
    }
    let pooler = linear_specs(
        &format!("{prefix}pooler.dense"),
        config.hidden,
        config.hidden,
    );
    Expected {
        required,
        optional: pooler.map(|s| s.name).to_vec(),
        ignored_prefixes: vec![
            format!("{prefix}embeddings.position_ids"),
            "lm_head.".to_owned(),
        ],
    }
}

/// Logits [batch, labels] from the last hidden state.
pub fn classifier_forward(
    g: &mut Graph,
    checkpoint: &Checkpoint,
    hidden: ValueId,
    dropout: (&mut Dropout, f32),
) -> ValueId {
    let head = Weights {
        checkpoint,
        prefix: "",
    };
    let first = g.op("classifier.first_token", Op::FirstToken { x: hidden });
    let first = dropout.0.apply(g, first, dropout.1, "classifier.dense");
    let dense = head.linear(g, first, "classifier.dense");
    let dense = g.op("classifier.tanh", Op::Tanh { x: dense });
    let dense = dropout.0.apply(g, dense, dropout.1, "classifier.out_proj");
    head.linear(g, dense, "classifier.out_proj")
}
