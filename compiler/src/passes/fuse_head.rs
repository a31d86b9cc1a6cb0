//! The classification head as one op: the first token, a dense Linear, tanh,
//! and the output Linear (BERT's pooler and classifier; XLM-R's
//! classifier.dense and out_proj) become one Head, a workgroup a sequence.
//! The kernel keeps the pooled vector in workgroup memory, so hidden widths
//! past [`MAX_ROW_WIDTH`] are left alone.

use crate::ir::{Graph, Op, Source, ValueId};

use super::rewrite::{apply, op_of, Rewrite};
use super::MAX_ROW_WIDTH;

pub fn fuse_head(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let once = |id: ValueId| readers[id.index()] == 1;
    let mut rewrite = Rewrite::default();
    for (id, value) in graph.values() {
        let Source::Op(Op::Linear {
            x: pooled,
            weight: out_weight,
            bias: out_bias,
            gelu: false,
        }) = value.source
        else {
            continue;
        };
        let Some(&Op::Tanh { x: dense }) = op_of(graph, pooled) else {
            continue;
        };
        let Some(&Op::Linear {
            x: first,
            weight: dense_weight,
            bias: dense_bias,
            gelu: false,
        }) = op_of(graph, dense)
        else {
            continue;
        };
        let Some(&Op::FirstToken { x }) = op_of(graph, first) else {
            continue;
        };
        let width = graph.value(first).shape[1];
        let square = graph.value(dense_weight).shape == [width, width];
        let alone = once(pooled) && once(dense) && once(first);
        if !alone || !square || width > MAX_ROW_WIDTH {
            continue;
        }
        rewrite.replace.insert(
            id,
            Op::Head {
                x,
                dense_weight,
                dense_bias,
                out_weight,
                out_bias,
            },
        );
        rewrite.absorbed.extend([pooled, dense, first]);
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::fuse_linear;
    use crate::passes::testing::{count_ops, same_outputs, tiny_graph};

    #[test]
    fn pooler_and_classifier_become_one_op_with_the_same_result() {
        for model in ["tiny-bert", "tiny-xlmr"] {
            let graph = fuse_linear(&tiny_graph(model));
            let fused = fuse_head(&graph);
            assert_eq!(count_ops(&fused, |op| matches!(op, Op::Head { .. })), 1);
            let gone = |op: &Op| matches!(op, Op::FirstToken { .. } | Op::Tanh { .. });
            assert_eq!((count_ops(&graph, gone), count_ops(&fused, gone)), (2, 0));
            same_outputs(&graph, &fused, 0.0);
        }
    }

    #[test]
    fn a_pooled_vector_that_is_also_an_output_is_left_alone() {
        let mut graph = fuse_linear(&tiny_graph("tiny-bert"));
        let (tanh, _) = graph
            .values()
            .find(|(_, v)| v.name == "pooler.tanh")
            .unwrap();
        graph.mark_output("pooled", tanh);
        assert_eq!(
            count_ops(&fuse_head(&graph), |op| matches!(op, Op::Head { .. })),
            0
        );
    }
}
