//! Graph passes, one file a pass, each a function from a graph to a graph.
//! `fuse` runs the fusions `xltc compile` applies unless asked not to.

mod autodiff;
mod fuse_attention;
mod fuse_embeddings;
mod fuse_head;
mod fuse_linear;
mod fuse_linear_norm;
mod fuse_qkv;
mod rewrite;

pub use autodiff::{
    autodiff, gradient_name, perturbation_gradient, AutodiffError, WORD_EMBEDDING_GRADIENT,
};
pub use fuse_attention::fuse_attention;
pub use fuse_embeddings::fuse_embeddings;
pub use fuse_head::fuse_head;
pub use fuse_linear::fuse_linear;
pub use fuse_linear_norm::fuse_linear_norm;
pub use fuse_qkv::fuse_qkv;

use crate::ir::Graph;

/// The widest rows the fused kernels that keep whole rows in one workgroup
/// take (GEMM + residual + LayerNorm holds them in registers, the
/// classification head in workgroup memory); the passes leave wider ones
/// un-fused. Every encoder xltc knows is at most 1024 wide.
pub const MAX_ROW_WIDTH: usize = 2048;

/// Which fusions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fusions {
    /// GEMM + bias (+ GELU) as one Linear.
    pub linear: bool,
    /// Scores, mask, softmax and context as one kernel.
    pub attention: bool,
    /// Q, K and V as one GEMM.
    pub qkv: bool,
    /// GEMM + bias + residual + LayerNorm as one kernel.
    pub linear_norm: bool,
    /// The embedding layer's gathers, sums and LayerNorm as one kernel.
    pub embeddings: bool,
    /// The pooler and classifier as one kernel.
    pub head: bool,
}

impl Fusions {
    pub const ALL: Fusions = Fusions {
        linear: true,
        attention: true,
        qkv: true,
        linear_norm: true,
        embeddings: true,
        head: true,
    };
    pub const NONE: Fusions = Fusions {
        linear: false,
        attention: false,
        qkv: false,
        linear_norm: false,
        embeddings: false,
        head: false,
    };
    /// The fusions training's programs take, after autodiff: GEMM + bias
    /// (GELU stays apart, since its backward reads the pre-activation). The
    /// others would pack parameters into new tensors (Q, K and V; the
    /// embedding tables; the head) or lose a value the backward reads
    /// (attention's probabilities, the LayerNorm's input), so their passes
    /// find nothing to fuse in a training graph or must not run.
    pub const TRAINING: Fusions = Fusions {
        linear: true,
        ..Fusions::NONE
    };
}

/// What `xltc compile` fuses unless told otherwise: every fusion but the two
/// whose kernels were measured slower than the kernels they replace
/// (multilingual-e5-small, batch 16 x 64 tokens, lavapipe: the fused
/// GEMM + residual + LayerNorm at 1.5 GFLOP/s against the lane GEMM's 8.3,
/// the fused attention at 0.5 against 2.9 to 4.0 for the blocked products;
/// the whole forward 17.6 s fused, 6.2 s without them; docs/performance.md).
/// `xltc compile --tune` measures them again on the adapter present.
impl Default for Fusions {
    fn default() -> Self {
        Fusions {
            attention: false,
            linear_norm: false,
            ..Fusions::ALL
        }
    }
}

/// Every fusion: [`fuse_with`] and [`Fusions::ALL`].
pub fn fuse(graph: &Graph) -> Graph {
    fuse_with(graph, Fusions::ALL)
}

/// The fusions `fusions` asks for, in an order where each finds the ops it
/// expects: GEMM + bias (+ GELU) as one Linear; attention as one kernel; Q,
/// K and V as one GEMM; GEMM + bias + residual + LayerNorm; the embedding
/// layer; the classification head.
pub fn fuse_with(graph: &Graph, fusions: Fusions) -> Graph {
    type Pass = fn(&Graph) -> Graph;
    let passes: [(bool, Pass); 6] = [
        (fusions.linear, fuse_linear),
        (fusions.attention, fuse_attention),
        (fusions.qkv, fuse_qkv),
        (fusions.linear_norm, fuse_linear_norm),
        (fusions.embeddings, fuse_embeddings),
        (fusions.head, fuse_head),
    ];
    let mut graph = graph.clone();
    for (on, pass) in passes {
        if on {
            graph = pass(&graph);
        }
    }
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pass, in `fuse`'s order, keeps every graph invariant.
    #[test]
    fn every_pass_keeps_the_graph_valid() {
        type Pass = fn(&Graph) -> Graph;
        let passes: [(&str, Pass); 6] = [
            ("fuse_linear", fuse_linear),
            ("fuse_attention", fuse_attention),
            ("fuse_qkv", fuse_qkv),
            ("fuse_linear_norm", fuse_linear_norm),
            ("fuse_embeddings", fuse_embeddings),
            ("fuse_head", fuse_head),
        ];
        for model in ["tiny-bert", "tiny-xlmr"] {
            let mut graph = testing::tiny_graph(model);
            graph
                .validate()
                .unwrap_or_else(|e| panic!("{model} as built: {e}"));
            for (name, pass) in passes {
                graph = pass(&graph);
                graph
                    .validate()
                    .unwrap_or_else(|e| panic!("{model} after {name}: {e}"));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    use xltc_runtime::ModelInputs;

    use crate::frontend::Model;
    use crate::ir::{Graph, Input, Op, Source};
    use crate::reference;

    /// The forward graph of a tiny test model (tests/fixtures/models) for 3
    /// sequences of 7 tokens.
    pub fn tiny_graph(name: &str) -> Graph {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
        Model::load(&dir.join(name)).unwrap().graph(3, 7)
    }

    pub fn count_ops(graph: &Graph, which: impl Fn(&Op) -> bool) -> usize {
        let ops = graph.values().filter_map(|(_, v)| match &v.source {
            Source::Op(op) => Some(op),
            _ => None,
        });
        ops.filter(|op| which(op)).count()
    }

    /// Inputs every table of `graph`'s gathers can take: ids spread over
    /// each table's rows; sequence b has b padding tokens at its end.
    fn inputs(graph: &Graph) -> ModelInputs {
        let tokens = graph.tokens();
        let mut inputs = ModelInputs {
            batch: graph.batch,
            seq: graph.seq,
            input_ids: vec![0; tokens],
            token_type_ids: vec![0; tokens],
            position_ids: vec![0; tokens],
            attention_mask: (0..tokens)
                .map(|t| f32::from(t % graph.seq < graph.seq - t / graph.seq))
                .collect(),
        };
        for (_, value) in graph.values() {
            let Source::Op(Op::Gather { table, ids }) = value.source else {
                continue;
            };
            let rows = graph.value(table).shape[0] as u32;
            let Source::Input(input) = graph.value(ids).source else {
                continue;
            };
            let target = match input {
                Input::InputIds => &mut inputs.input_ids,
                Input::TokenTypeIds => &mut inputs.token_type_ids,
                _ => &mut inputs.position_ids,
            };
            for (t, id) in target.iter_mut().enumerate() {
                *id = (t as u32 * 7 + 3) % rows;
            }
        }
        inputs
    }

    /// Both graphs give the same outputs on the CPU reference, within
    /// `tolerance` of the largest magnitude (0: bit for bit); inputs come
    /// from the first graph's gathers.
    pub fn same_outputs(a: &Graph, b: &Graph, tolerance: f32) {
        let inputs = inputs(a);
        let (ra, rb) = (
            reference::run(a, &inputs).unwrap(),
            reference::run(b, &inputs).unwrap(),
        );
        assert_eq!(ra.keys().collect::<Vec<_>>(), rb.keys().collect::<Vec<_>>());
        for (name, ta) in &ra {
            let tb = &rb[name];
            assert_eq!(ta.shape, tb.shape, "{name}");
            let scale = ta.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ta
                .data
                .iter()
                .zip(&tb.data)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst <= tolerance * scale, "{name}: off by {worst}");
        }
    }
}
