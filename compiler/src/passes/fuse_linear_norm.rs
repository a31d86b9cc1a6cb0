//! GEMM + bias + residual + LayerNorm as one op: a Linear (without GELU)
//! read only by an Add with the residual, read only by a LayerNorm, becomes
//! a LinearNorm, so neither the product nor the sum reaches memory. The
//! kernel owns whole rows, so rows wider than [`MAX_ROW_WIDTH`] are left
//! alone.

use crate::ir::{Graph, Op, Source, ValueId};

use super::rewrite::{apply, op_of, Rewrite};
use super::MAX_ROW_WIDTH;

pub fn fuse_linear_norm(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let once = |id: ValueId| readers[id.index()] == 1;
    let linear = |id: ValueId| match op_of(graph, id) {
        Some(&Op::Linear {
            x,
            weight,
            bias,
            gelu: false,
        }) if once(id) => Some((x, weight, bias)),
        _ => None,
    };
    let mut rewrite = Rewrite::default();
    for (id, value) in graph.values() {
        let Source::Op(Op::LayerNorm {
            x: sum,
            gamma,
            beta,
            eps,
        }) = value.source
        else {
            continue;
        };
        let Some(&Op::Add { a, b }) = op_of(graph, sum) else {
            continue;
        };
        if !once(sum) || value.shape[1] > MAX_ROW_WIDTH {
            continue;
        }
        let (product, residual, (x, weight, bias)) = match (linear(a), linear(b)) {
            (Some(found), _) => (a, b, found),
            (None, Some(found)) => (b, a, found),
            (None, None) => continue,
        };
        rewrite.replace.insert(
            id,
            Op::LinearNorm {
                x,
                weight,
                bias,
                residual,
                gamma,
                beta,
                eps,
            },
        );
        rewrite.absorbed.extend([product, sum]);
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::fuse_linear;
    use crate::passes::testing::{count_ops, same_outputs, tiny_graph};

    #[test]
    fn both_sublayer_outputs_of_every_layer_fuse_with_the_same_result() {
        for model in ["tiny-bert", "tiny-xlmr"] {
            let graph = fuse_linear(&tiny_graph(model));
            let fused = fuse_linear_norm(&graph);
            let layers = count_ops(&graph, |op| matches!(op, Op::AttentionContext { .. }));
            let norms = |g: &Graph| count_ops(g, |op| matches!(op, Op::LayerNorm { .. }));
            let fused_norms = count_ops(&fused, |op| matches!(op, Op::LinearNorm { .. }));
            assert_eq!(fused_norms, 2 * layers);
            // The embeddings' LayerNorm has no GEMM before it.
            assert_eq!((norms(&graph), norms(&fused)), (2 * layers + 1, 1));
            assert_eq!(count_ops(&fused, |op| matches!(op, Op::Add { .. })), 2);
            same_outputs(&graph, &fused, 0.0);
        }
    }

    #[test]
    fn a_product_read_twice_is_left_alone() {
        let mut graph = fuse_linear(&tiny_graph("tiny-bert"));
        let (dense, _) = graph
            .values()
            .find(|(_, v)| v.name == "encoder.layer.0.output.dense")
            .unwrap();
        graph.mark_output("dense", dense);
        let fused = fuse_linear_norm(&graph);
        let layers = count_ops(&graph, |op| matches!(op, Op::AttentionContext { .. }));
        let fused_norms = count_ops(&fused, |op| matches!(op, Op::LinearNorm { .. }));
        assert_eq!(fused_norms, 2 * layers - 1);
    }
}
