//! Reverse-mode autodiff: a training graph's forward (with its `loss`
//! output, see `Model::training_graph`) becomes forward plus backward. One
//! rule an op, each the op's local gradient written in IR ops (the table in
//! `contributions`); the pass walks the values in reverse arena order and
//! sums the contributions a value gets from its several readers. The
//! gradient of every weight comes out as `grad.<checkpoint name>`, and the
//! gradient of the word-embedding perturbation, which is the gradient with
//! respect to the gathered word embeddings, as `grad.word_embeddings`.
//! It works on the un-fused graph; fusion is a later lowering.

use std::collections::HashMap;

use crate::ir::{Graph, Input, Op, Source, ValueId};

/// The name of the gradient output of the word-embedding perturbation.
pub const WORD_EMBEDDING_GRADIENT: &str = "grad.word_embeddings";

/// The gradient output of the weight of checkpoint name `name`.
pub fn gradient_name(name: &str) -> String {
    format!("grad.{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum AutodiffError {
    #[error("the graph has no `loss` output to differentiate")]
    NoLoss,
    #[error("{value}: no gradient rule for this op (autodiff runs on the un-fused graph)")]
    NoRule { value: String },
}

/// Adds the backward of `forward`'s `loss` output and marks the gradient outputs.
pub fn autodiff(forward: &Graph) -> Result<Graph, AutodiffError> {
    differentiate(forward, true)
}

/// Adds the backward of `forward`'s `loss` to its word-embedding
/// perturbation only (`grad.word_embeddings`): what an adversarial ascent
/// step needs, without the weights' gradients (no weight GEMM, no gather's
/// gradient).
pub fn perturbation_gradient(forward: &Graph) -> Result<Graph, AutodiffError> {
    let mut graph = differentiate(forward, false)?;
    graph.retain_outputs(|name| name == "loss" || name == WORD_EMBEDDING_GRADIENT);
    Ok(super::rewrite::prune(&graph))
}

fn differentiate(forward: &Graph, weights: bool) -> Result<Graph, AutodiffError> {
    let loss = forward.output("loss").ok_or(AutodiffError::NoLoss)?;
    let mut g = forward.clone();
    let needs = needs_gradient(forward, weights);
    let mut grads: HashMap<ValueId, ValueId> = HashMap::new();
    for (id, value) in forward.values().collect::<Vec<_>>().into_iter().rev() {
        let Source::Op(op) = &value.source else {
            continue;
        };
        let dy = grads.get(&id).copied();
        if id != loss && dy.is_none() {
            continue;
        }
        let name = value.name.clone();
        for (operand, grad) in contributions(&mut g, id, op, dy, &name)? {
            if !needs[operand.index()] {
                continue;
            }
            let sum = match grads.get(&operand) {
                Some(&earlier) => g.op(
                    format!("grad.{}", forward.value(operand).name),
                    Op::Add {
                        a: earlier,
                        b: grad,
                    },
                ),
                None => grad,
            };
            grads.insert(operand, sum);
        }
    }
    for (id, value) in forward.values() {
        let Some(&grad) = grads.get(&id) else {
            continue;
        };
        match value.source {
            Source::Weight(_) => g.mark_output(&gradient_name(&value.name), grad),
            Source::Input(Input::WordEmbeddingDelta { .. }) => {
                g.mark_output(WORD_EMBEDDING_GRADIENT, grad)
            }
            _ => {}
        }
    }
    Ok(g)
}

/// Which values a gradient must reach: the weights (when `weights`), the
/// word-embedding perturbation, and everything computed from them.
fn needs_gradient(graph: &Graph, weights: bool) -> Vec<bool> {
    let mut needs = Vec::new();
    for (_, value) in graph.values() {
        let own = match value.source {
            Source::Weight(_) => weights,
            Source::Input(input) => matches!(input, Input::WordEmbeddingDelta { .. }),
            _ => false,
        };
        let from_operands = value.source.operands().iter().any(|o| needs[o.index()]);
        needs.push(own || from_operands);
    }
    needs
}

/// The rule table: for op `op` of value `out` whose gradient is `dy` (None
/// for the loss itself, whose gradient is 1), the gradient it sends to each
/// operand.
fn contributions(
    g: &mut Graph,
    out: ValueId,
    op: &Op,
    dy: Option<ValueId>,
    name: &str,
) -> Result<Vec<(ValueId, ValueId)>, AutodiffError> {
    let no_rule = || AutodiffError::NoRule {
        value: name.to_owned(),
    };
    if let Op::CrossEntropy {
        logits,
        labels,
        example_mask,
    } = *op
    {
        let grad = Op::CrossEntropyBackward {
            logits,
            labels,
            example_mask,
        };
        return Ok(vec![(logits, g.op(format!("grad.{name}"), grad))]);
    }
    if let Op::Alignment {
        x,
        example_mask,
        loss,
    } = *op
    {
        let grad = Op::AlignmentBackward {
            x,
            example_mask,
            loss,
        };
        return Ok(vec![(x, g.op(format!("grad.{name}"), grad))]);
    }
    let dy = dy.ok_or_else(no_rule)?;
    let op_named = |g: &mut Graph, suffix: &str, op: Op| g.op(format!("grad.{name}.{suffix}"), op);
    Ok(match *op {
        Op::Gather { table, ids } => {
            let rows = g.value(table).shape[0];
            vec![(
                table,
                op_named(g, "table", Op::GatherBackward { dy, ids, rows }),
            )]
        }
        Op::Add { a, b } => vec![(a, dy), (b, dy)],
        Op::MatMul { x, weight } => vec![
            (x, op_named(g, "x", Op::MatMulBackwardX { dy, weight })),
            (
                weight,
                op_named(g, "weight", Op::MatMulBackwardWeight { dy, x }),
            ),
        ],
        Op::AddBias { x, bias } => vec![(x, dy), (bias, op_named(g, "bias", Op::ColumnSum { dy }))],
        Op::Gelu { x } => vec![(x, op_named(g, "x", Op::GeluBackward { x, dy }))],
        Op::Tanh { x } => vec![(x, op_named(g, "x", Op::TanhBackward { y: out, dy }))],
        Op::LayerNorm {
            x,
            gamma,
            beta,
            eps,
        } => {
            let statistics = op_named(g, "statistics", Op::LayerNormStatistics { x, eps });
            let dx = Op::LayerNormBackwardX {
                dy,
                x,
                statistics,
                gamma,
            };
            let dgamma = Op::LayerNormBackwardGamma { dy, x, statistics };
            vec![
                (x, op_named(g, "x", dx)),
                (gamma, op_named(g, "gamma", dgamma)),
                (beta, op_named(g, "beta", Op::ColumnSum { dy })),
            ]
        }
        Op::AttentionScores { query, key, heads } => {
            let of = |other, of_key| Op::AttentionScoresBackward {
                dy,
                other,
                heads,
                of_key,
            };
            vec![
                (query, op_named(g, "query", of(key, false))),
                (key, op_named(g, "key", of(query, true))),
            ]
        }
        Op::MaskedSoftmax { scores, .. } => vec![(
            scores,
            op_named(g, "scores", Op::MaskedSoftmaxBackward { probs: out, dy }),
        )],
        Op::AttentionContext {
            probs,
            value,
            heads,
        } => vec![
            (
                probs,
                op_named(
                    g,
                    "probs",
                    Op::AttentionContextBackwardProbs { dy, value, heads },
                ),
            ),
            (
                value,
                op_named(
                    g,
                    "value",
                    Op::AttentionContextBackwardValue { dy, probs, heads },
                ),
            ),
        ],
        Op::FirstToken { x } => vec![(x, op_named(g, "x", Op::FirstTokenBackward { dy }))],
        Op::MeanPool { x, mask } => vec![(x, op_named(g, "x", Op::MeanPoolBackward { dy, mask }))],
        Op::Dropout { x, key, site, p } => vec![(
            x,
            op_named(g, "x", Op::DropoutBackward { dy, key, site, p }),
        )],
        _ => return Err(no_rule()),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use xltc_runtime::{Encoding, ModelInputs, SplitMix64};

    use super::*;
    use crate::frontend::Model;
    use crate::ir::AlignmentLoss;
    use crate::reference::{run_in, TrainingInputs};

    fn tiny(name: &str) -> Model {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        Model::load(&dir.join(name)).unwrap()
    }

    fn uniform(rng: &mut SplitMix64) -> f64 {
        rng.next_f64() * 2.0 - 1.0
    }

    /// Three sequences of 6, 4 and 5 tokens (the last two padded), the third
    /// a row that only pads the batch (example mask 0), and a small random
    /// word-embedding perturbation.
    fn batch(model: &Model) -> (ModelInputs, TrainingInputs) {
        let mut rng = SplitMix64::new(5);
        let vocab = model.config.vocab as u64;
        let encodings: Vec<Encoding> = [6, 4, 5]
            .iter()
            .map(|&len| Encoding {
                ids: (0..len).map(|_| (rng.next_u64() % vocab) as u32).collect(),
                type_ids: (0..len)
                    .map(|t| u32::from(t >= len / 2) % model.config.type_vocab as u32)
                    .collect(),
            })
            .collect();
        let inputs = ModelInputs::pad(
            &encodings,
            0,
            model.config.pad_token_id,
            model.position_scheme(),
        );
        let delta = (0..inputs.batch * inputs.seq * model.config.hidden)
            .map(|_| (0.01 * uniform(&mut rng)) as f32)
            .collect();
        let labels = model.config.labels.len() as u32;
        let training = TrainingInputs {
            labels: vec![0, 1 % labels, 2 % labels],
            example_mask: vec![1.0, 1.0, 0.0],
            word_embedding_delta: delta,
            dropout_key: vec![7, 0, 3, 1],
        };
        (inputs, training)
    }

    fn loss(graph: &Graph, inputs: &ModelInputs, training: &TrainingInputs) -> f64 {
        run_in::<f64>(graph, inputs, training).unwrap()["loss"].data[0]
    }

    /// d loss / d x[i] by central differences, x[i] moved by about 1e-3 and
    /// by half that in f32, the two combined by Richardson extrapolation
    /// (their h^2 errors cancel); the move actually made (a difference of
    /// f32 values, exact in f64) is each denominator.
    fn numeric(x: &[f32], i: usize, loss_at: impl Fn(Vec<f32>) -> f64) -> f64 {
        let central = |h: f32| {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += h;
            down[i] -= h;
            let step = up[i] as f64 - down[i] as f64;
            ((loss_at(up) - loss_at(down)) / step, step)
        };
        let h = 1e-3f32.max(x[i].abs() * 1e-3);
        let ((wide, a), (narrow, b)) = (central(h), central(h / 2.0));
        let r2 = (a / b) * (a / b);
        (r2 * narrow - wide) / (r2 - 1.0)
    }

    /// Every weight's gradient and the word-embedding gradient, from the
    /// backward graph run in f64 with dropout on (a fixed key: the same masks
    /// in every run), against central differences of the loss at two entries
    /// of each tensor (its largest gradient and one at random).
    #[test]
    fn gradients_of_tiny_models_match_finite_differences() {
        for name in ["tiny-bert", "tiny-xlmr"] {
            let model = tiny(name);
            let forward = model.training_graph(3, 6, true).unwrap();
            let graph = autodiff(&forward).unwrap();
            graph.validate().unwrap();
            let (inputs, training) = batch(&model);
            let out = run_in::<f64>(&graph, &inputs, &training).unwrap();
            let scale = out
                .iter()
                .filter(|(n, _)| n.starts_with("grad."))
                .flat_map(|(_, t)| t.data.iter())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            let mut rng = SplitMix64::new(9);
            let mut checked = 0;
            for (value_id, value) in forward.values() {
                let Source::Weight(data) = &value.source else {
                    continue;
                };
                let grad = &out[&gradient_name(&value.name)].data;
                let largest = (0..grad.len())
                    .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
                    .unwrap();
                let random = rng.below(grad.len());
                for i in [largest, random] {
                    let probe = numeric(data, i, |moved| {
                        let mut g = forward.clone();
                        assert!(g.set_weight(&value.name, Arc::from(moved)));
                        loss(&g, &inputs, &training)
                    });
                    let error = (probe - grad[i]).abs() / scale;
                    assert!(
                        error < 1e-5,
                        "{name} {} [{i}] (value {value_id:?}): analytic {} numeric {probe}",
                        value.name,
                        grad[i]
                    );
                    checked += 1;
                }
            }
            assert!(checked > 40, "{name}: only {checked} entries checked");
            let grad = &out[WORD_EMBEDDING_GRADIENT].data;
            for i in [0, 7, grad.len() / 3, grad.len() / 2 + 1] {
                let probe = numeric(&training.word_embedding_delta, i, |moved| {
                    let training = TrainingInputs {
                        word_embedding_delta: moved,
                        ..training.clone()
                    };
                    loss(&forward, &inputs, &training)
                });
                assert!(
                    (probe - grad[i]).abs() / scale < 1e-5,
                    "{name} word embeddings [{i}]: analytic {} numeric {probe}",
                    grad[i]
                );
            }
        }
    }

    /// Padding tokens and the row that only pads the batch get no gradient
    /// at all; the f32 run agrees with the f64 one.
    #[test]
    fn padding_gets_no_gradient_and_f32_agrees_with_f64() {
        let model = tiny("tiny-xlmr");
        let graph = autodiff(&model.training_graph(3, 6, true).unwrap()).unwrap();
        let (inputs, training) = batch(&model);
        let out64 = run_in::<f64>(&graph, &inputs, &training).unwrap();
        let out32 = run_in::<f32>(&graph, &inputs, &training).unwrap();
        let hidden = model.config.hidden;
        let grad = &out64[WORD_EMBEDDING_GRADIENT].data;
        for (token, row) in grad.chunks_exact(hidden).enumerate() {
            let padding = inputs.attention_mask[token] == 0.0;
            let padded_example = token / inputs.seq == 2;
            let zero = row.iter().all(|&v| v == 0.0);
            assert_eq!(zero, padding || padded_example, "token {token}");
        }
        // Relative to the largest of the output's and of all gradients (the key
        // biases' gradients are zero in exact arithmetic: softmax ignores a
        // constant added to a row of scores).
        let largest =
            |t: &crate::reference::Tensor<f64>| t.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let gradients = out64
            .iter()
            .filter(|(n, _)| n.starts_with("grad."))
            .map(|(_, t)| largest(t))
            .fold(0.0, f64::max);
        for (name, t64) in &out64 {
            let t32 = &out32[name];
            let scale = if name.starts_with("grad.") {
                gradients
            } else {
                largest(t64)
            };
            for (a, b) in t32.data.iter().zip(&t64.data) {
                assert!((*a as f64 - b).abs() / scale < 1e-4, "{name}: {a} vs {b}");
            }
        }
    }

    /// The alignment loss (mean 1 - cosine of mean-pooled states of two
    /// sentences and their translations) and its backward, in f64 with
    /// dropout on, against central differences: weights of every kind and
    /// the word-embedding perturbation; a pair whose mask is 0 gets no
    /// gradient, and a weight of 0.5 on both pairs halves the loss.
    #[test]
    fn the_alignment_loss_matches_finite_differences() {
        alignment_matches_finite_differences(AlignmentLoss::Cosine);
    }

    /// The same for the contrastive loss (InfoNCE over the two real pairs).
    #[test]
    fn the_contrastive_alignment_loss_matches_finite_differences() {
        alignment_matches_finite_differences(AlignmentLoss::Contrastive { temperature: 0.1 });
    }

    /// The same for the head's symmetric KL (the classifier's logits of
    /// two pairs and their translated versions): the head's weights too.
    #[test]
    fn the_symmetric_kl_alignment_loss_matches_finite_differences() {
        alignment_matches_finite_differences(AlignmentLoss::SymmetricKl);
    }

    fn alignment_matches_finite_differences(measure: AlignmentLoss) {
        let model = tiny("tiny-xlmr");
        let mut rng = SplitMix64::new(21);
        let vocab = model.config.vocab as u64;
        let encodings: Vec<Encoding> = [5, 3, 6, 4, 2, 5]
            .iter()
            .map(|&len| Encoding {
                ids: (0..len)
                    .map(|_| 4 + (rng.next_u64() % (vocab - 4)) as u32)
                    .collect(),
                type_ids: vec![0; len],
            })
            .collect();
        let inputs = ModelInputs::pad(
            &encodings,
            0,
            model.config.pad_token_id,
            model.position_scheme(),
        );
        let delta: Vec<f32> = (0..inputs.batch * inputs.seq * model.config.hidden)
            .map(|_| (0.01 * uniform(&mut rng)) as f32)
            .collect();
        // Three pairs: rows 0-2 and their translations 3-5; the last pair's mask is 0.
        let training = TrainingInputs {
            labels: vec![0; 6],
            example_mask: vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            word_embedding_delta: delta,
            dropout_key: vec![3, 0, 1, 0],
        };
        let forward = model.alignment_graph(3, inputs.seq, true, measure);
        let graph = autodiff(&forward).unwrap();
        graph.validate().unwrap();
        let out = run_in::<f64>(&graph, &inputs, &training).unwrap();
        let value = out["loss"].data[0];
        let bound = match measure {
            AlignmentLoss::Cosine => 2.0,
            // Two pairs: log 2 plus at most 2 / temperature a direction.
            AlignmentLoss::Contrastive { temperature } => 2f64.ln() + 2.0 / temperature,
            // Unbounded in general; the tiny model's logits are small.
            AlignmentLoss::SymmetricKl => 1.0,
        };
        assert!(value > 0.0 && value < bound, "{value}");
        let mut checked = 0;
        for (_, v) in forward.values() {
            let Source::Weight(data) = &v.source else {
                continue;
            };
            let Some(grad) = out.get(&gradient_name(&v.name)) else {
                continue;
            };
            let grad = &grad.data;
            let i = (0..grad.len())
                .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
                .unwrap();
            let probe = numeric(data, i, |moved| {
                let mut g = forward.clone();
                assert!(g.set_weight(&v.name, Arc::from(moved)));
                loss(&g, &inputs, &training)
            });
            assert!(
                (probe - grad[i]).abs() <= 1e-5 * probe.abs().max(1e-3),
                "{} [{i}]: analytic {} numeric {probe}",
                v.name,
                grad[i]
            );
            checked += 1;
        }
        assert!(checked > 10, "only {checked} weights checked");
        let head = forward
            .values()
            .filter(|(_, v)| matches!(v.source, Source::Weight(_)))
            .any(|(_, v)| {
                v.name.contains("classifier") && out.contains_key(&gradient_name(&v.name))
            });
        assert_eq!(
            head,
            measure.on_head(),
            "the head's weights learn from a term on the head only"
        );
        let grad = &out[WORD_EMBEDDING_GRADIENT].data;
        let hidden = model.config.hidden;
        for i in [1, hidden + 3, 3 * inputs.seq * hidden + 2] {
            let probe = numeric(&training.word_embedding_delta, i, |moved| {
                let t = TrainingInputs {
                    word_embedding_delta: moved,
                    ..training.clone()
                };
                loss(&forward, &inputs, &t)
            });
            assert!(
                (probe - grad[i]).abs() <= 1e-5 * probe.abs().max(1e-3),
                "word embeddings [{i}]: analytic {} numeric {probe}",
                grad[i]
            );
        }
        for row in [2, 5] {
            let range = row * inputs.seq * hidden..(row + 1) * inputs.seq * hidden;
            assert!(
                grad[range].iter().all(|&v| v == 0.0),
                "row {row} of a masked pair"
            );
        }
        let half = TrainingInputs {
            example_mask: vec![0.5, 0.5, 0.0, 0.5, 0.5, 0.0],
            ..training.clone()
        };
        let halved = loss(&forward, &inputs, &half);
        assert!((halved - 0.5 * value).abs() < 1e-12, "{halved} {value}");
    }

    /// The perturbation's own backward gives the full backward's
    /// `grad.word_embeddings` bit for bit, with no weight gradient (no dW
    /// GEMM, no gather's gradient).
    #[test]
    fn the_perturbation_gradient_is_the_full_backwards_without_the_weights() {
        for name in ["tiny-bert", "tiny-xlmr"] {
            let model = tiny(name);
            let forward = model.training_graph(3, 6, true).unwrap();
            let (full, own) = (
                autodiff(&forward).unwrap(),
                perturbation_gradient(&forward).unwrap(),
            );
            own.validate().unwrap();
            let names: Vec<&str> = own.outputs().iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["loss", WORD_EMBEDDING_GRADIENT], "{name}");
            let (inputs, training) = batch(&model);
            let (a, b) = (
                run_in::<f32>(&full, &inputs, &training).unwrap(),
                run_in::<f32>(&own, &inputs, &training).unwrap(),
            );
            assert_eq!(a["loss"].data, b["loss"].data, "{name}");
            assert_eq!(
                a[WORD_EMBEDDING_GRADIENT].data, b[WORD_EMBEDDING_GRADIENT].data,
                "{name}"
            );
            let weight_gradients = |g: &Graph| {
                crate::passes::testing::count_ops(g, |op| {
                    matches!(
                        op,
                        Op::MatMulBackwardWeight { .. } | Op::GatherBackward { .. }
                    )
                })
            };
            assert!(weight_gradients(&full) > 0, "{name}");
            assert_eq!(weight_gradients(&own), 0, "{name}");
        }
    }

    /// An example's mask is its weight in the mean: masks w and 0.5 w on
    /// the same batch halve the loss and every gradient (the mean is over
    /// the examples whose weight is not 0).
    #[test]
    fn example_weights_scale_the_loss() {
        let model = tiny("tiny-bert");
        let graph = autodiff(&model.training_graph(3, 6, false).unwrap()).unwrap();
        let (inputs, training) = batch(&model);
        let half = TrainingInputs {
            example_mask: vec![0.5, 0.5, 0.0],
            ..training.clone()
        };
        let (a, b) = (
            run_in::<f64>(&graph, &inputs, &training).unwrap(),
            run_in::<f64>(&graph, &inputs, &half).unwrap(),
        );
        for (name, t) in &a {
            if name == "logits" {
                continue;
            }
            for (x, y) in t.data.iter().zip(&b[name].data) {
                assert!(
                    (x * 0.5 - y).abs() <= 1e-12 * x.abs().max(1e-30),
                    "{name}: {x} {y}"
                );
            }
        }
    }

    #[test]
    fn fused_graphs_and_graphs_without_a_loss_are_refused() {
        let model = tiny("tiny-bert");
        assert!(matches!(
            autodiff(&model.graph(2, 4)),
            Err(AutodiffError::NoLoss)
        ));
        let fused = crate::passes::fuse(&model.training_graph(2, 4, false).unwrap());
        let err = autodiff(&fused).unwrap_err();
        assert!(err.to_string().contains("no gradient rule"), "{err}");
    }
}
