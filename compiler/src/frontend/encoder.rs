//! The transformer encoder BERT and XLM-R share: embeddings (the sum of word,
//! token type and position embeddings, then LayerNorm), then layers of
//! self-attention and feed-forward,
//! each closed by a residual sum and a LayerNorm (post-norm). Tensor names are
//! Hugging Face's, below the family prefix ("bert.", "roberta." or none).

use crate::ir::{Graph, Input, Op, ValueId};

use super::checkpoint::{Checkpoint, TensorSpec};
use super::config::ModelConfig;

/// The tensors of a checkpoint below one name prefix, added to a graph on demand.
pub struct Weights<'a> {
    pub checkpoint: &'a Checkpoint,
    pub prefix: &'a str,
}

impl Weights<'_> {
    pub fn get(&self, g: &mut Graph, name: &str) -> ValueId {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.checkpoint.tensor(&full);
        g.weight(&full, tensor.shape.clone(), tensor.data.clone())
    }

    /// `x` times `{name}.weight` transposed, plus `{name}.bias`.
    pub fn linear(&self, g: &mut Graph, x: ValueId, name: &str) -> ValueId {
        let weight = self.get(g, &format!("{name}.weight"));
        let bias = self.get(g, &format!("{name}.bias"));
        let product = g.op(format!("{name}.matmul"), Op::MatMul { x, weight });
        g.op(name, Op::AddBias { x: product, bias })
    }

    pub fn layer_norm(&self, g: &mut Graph, x: ValueId, name: &str, eps: f32) -> ValueId {
        let gamma = self.get(g, &format!("{name}.weight"));
        let beta = self.get(g, &format!("{name}.bias"));
        g.op(
            name,
            Op::LayerNorm {
                x,
                gamma,
                beta,
                eps,
            },
        )
    }
}

pub fn spec(name: String, shape: &[usize]) -> TensorSpec {
    TensorSpec {
        name,
        shape: shape.to_vec(),
    }
}

/// The weight and bias of a Linear layer `name` from `inputs` to `outputs` features.
pub fn linear_specs(name: &str, outputs: usize, inputs: usize) -> [TensorSpec; 2] {
    [
        spec(format!("{name}.weight"), &[outputs, inputs]),
        spec(format!("{name}.bias"), &[outputs]),
    ]
}

fn layer_norm_specs(name: &str, width: usize) -> [TensorSpec; 2] {
    [
        spec(format!("{name}.weight"), &[width]),
        spec(format!("{name}.bias"), &[width]),
    ]
}

/// Every tensor the encoder reads, with its shape, full names.
pub fn encoder_tensors(config: &ModelConfig, prefix: &str) -> Vec<TensorSpec> {
    let (h, ff) = (config.hidden, config.intermediate);
    let p = |name: &str| format!("{prefix}{name}");
    let mut specs = vec![
        spec(p("embeddings.word_embeddings.weight"), &[config.vocab, h]),
        spec(
            p("embeddings.position_embeddings.weight"),
            &[config.max_positions, h],
        ),
        spec(
            p("embeddings.token_type_embeddings.weight"),
            &[config.type_vocab, h],
        ),
    ];
    specs.extend(layer_norm_specs(&p("embeddings.LayerNorm"), h));
    for layer in 0..config.layers {
        let l = |name: &str| p(&format!("encoder.layer.{layer}.{name}"));
        for name in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
        ] {
            specs.extend(linear_specs(&l(name), h, h));
        }
        specs.extend(linear_specs(&l("attention.output.dense"), h, h));
        specs.extend(layer_norm_specs(&l("attention.output.LayerNorm"), h));
        specs.extend(linear_specs(&l("intermediate.dense"), ff, h));
        specs.extend(linear_specs(&l("output.dense"), h, ff));
        specs.extend(layer_norm_specs(&l("output.LayerNorm"), h));
    }
    specs
}

/// Builds the encoder and returns its last hidden state [batch * seq, hidden].
/// Dropout where transformers applies it in training; each application is
/// a site with its own Philox stream. `Dropout::off()` adds nothing.
pub struct Dropout {
    key: Option<ValueId>,
    sites: u32,
}

impl Dropout {
    pub fn off() -> Self {
        Self {
            key: None,
            sites: 0,
        }
    }

    /// Dropout keyed by the graph's DropoutKey input.
    pub fn on(g: &mut Graph) -> Self {
        Self {
            key: Some(g.input(Input::DropoutKey)),
            sites: 0,
        }
    }

    pub fn apply(&mut self, g: &mut Graph, x: ValueId, p: f32, name: &str) -> ValueId {
        let Some(key) = self.key.filter(|_| p > 0.0) else {
            return x;
        };
        self.sites += 1;
        let site = self.sites;
        g.op(format!("{name}.dropout"), Op::Dropout { x, key, site, p })
    }
}

/// With `perturbable`, the input `word_embedding_delta` is added to the
/// gathered word embeddings (the training graph's hook for adversarial
/// perturbations, and the value whose gradient they read).
pub fn encoder_forward(
    g: &mut Graph,
    w: &Weights,
    config: &ModelConfig,
    perturbable: bool,
    dropout: &mut Dropout,
) -> ValueId {
    let x = embeddings_forward(g, w, config, perturbable);
    let mut x = dropout.apply(g, x, config.hidden_dropout, "embeddings");
    let mask = g.input(Input::AttentionMask);
    for layer in 0..config.layers {
        let name = format!("encoder.layer.{layer}");
        x = layer_forward(g, w, config, x, mask, dropout, &name);
    }
    x
}

fn embeddings_forward(
    g: &mut Graph,
    w: &Weights,
    config: &ModelConfig,
    perturbable: bool,
) -> ValueId {
    let lookup = |g: &mut Graph, input: Input, name: &str| {
        let ids = g.input(input);
        let table = w.get(g, &format!("embeddings.{name}.weight"));
        g.op(format!("embeddings.{name}"), Op::Gather { table, ids })
    };
    let mut words = lookup(g, Input::InputIds, "word_embeddings");
    if perturbable {
        let width = config.hidden;
        let delta = g.input(Input::WordEmbeddingDelta { width });
        words = g.op(
            "embeddings.word_embeddings.perturbed",
            Op::Add { a: words, b: delta },
        );
    }
    let types = lookup(g, Input::TokenTypeIds, "token_type_embeddings");
    let positions = lookup(g, Input::PositionIds, "position_embeddings");
    // Hugging Face's order: (words + token types) + positions.
    let sum = g.op("embeddings.sum", Op::Add { a: words, b: types });
    let sum = g.op(
        "embeddings.sum",
        Op::Add {
            a: sum,
            b: positions,
        },
    );
    w.layer_norm(g, sum, "embeddings.LayerNorm", config.layer_norm_eps)
}

fn layer_forward(
    g: &mut Graph,
    w: &Weights,
    config: &ModelConfig,
    x: ValueId,
    mask: ValueId,
    dropout: &mut Dropout,
    name: &str,
) -> ValueId {
    let heads = config.heads;
    let eps = config.layer_norm_eps;
    let query = w.linear(g, x, &format!("{name}.attention.self.query"));
    let key = w.linear(g, x, &format!("{name}.attention.self.key"));
    let value = w.linear(g, x, &format!("{name}.attention.self.value"));
    let scores = g.op(
        format!("{name}.attention.scores"),
        Op::AttentionScores { query, key, heads },
    );
    let probs = g.op(
        format!("{name}.attention.probs"),
        Op::MaskedSoftmax { scores, mask },
    );
    let probs = dropout.apply(
        g,
        probs,
        config.attention_dropout,
        &format!("{name}.attention.probs"),
    );
    let context = g.op(
        format!("{name}.attention.context"),
        Op::AttentionContext {
            probs,
            value,
            heads,
        },
    );
    let attended = w.linear(g, context, &format!("{name}.attention.output.dense"));
    let attended = dropout.apply(
        g,
        attended,
        config.hidden_dropout,
        &format!("{name}.attention.output"),
    );
    let residual = g.op(
        format!("{name}.attention.residual"),
        Op::Add { a: attended, b: x },
    );
    let x = w.layer_norm(
        g,
        residual,
        &format!("{name}.attention.output.LayerNorm"),
        eps,
    );

    let inner = w.linear(g, x, &format!("{name}.intermediate.dense"));
    let inner = g.op(format!("{name}.intermediate.gelu"), Op::Gelu { x: inner });
    let out = w.linear(g, inner, &format!("{name}.output.dense"));
    let out = dropout.apply(g, out, config.hidden_dropout, &format!("{name}.output"));
    let residual = g.op(format!("{name}.output.residual"), Op::Add { a: out, b: x });
    w.layer_norm(g, residual, &format!("{name}.output.LayerNorm"), eps)
}
