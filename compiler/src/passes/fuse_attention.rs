//! Attention as one op: AttentionScores, then MaskedSoftmax, then
//! AttentionContext, each the only reader of the one before, become one
//! Attention, so the [batch, heads, seq, seq] scores never reach memory.

use crate::ir::{Graph, Op, Source};

use super::rewrite::{apply, op_of, Rewrite};

pub fn fuse_attention(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let mut rewrite = Rewrite::default();
    for (id, value) in graph.values() {
        let Source::Op(Op::AttentionContext {
            probs,
            value,
            heads,
        }) = value.source
        else {
            continue;
        };
        let Some(&Op::MaskedSoftmax { scores, mask }) = op_of(graph, probs) else {
            continue;
        };
        let Some(&Op::AttentionScores { query, key, .. }) = op_of(graph, scores) else {
            continue;
        };
        if readers[probs.index()] != 1 || readers[scores.index()] != 1 {
            continue;
        }
        rewrite.replace.insert(
            id,
            Op::Attention {
                query,
                key,
                value,
                mask,
                heads,
                packed: false,
            },
        );
        rewrite.absorbed.extend([probs, scores]);
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testing::{count_ops, same_outputs, tiny_graph};

    #[test]
    fn scores_softmax_and_context_become_one_op_with_the_same_result() {
        for model in ["tiny-bert", "tiny-xlmr"] {
            let graph = tiny_graph(model);
            let fused = fuse_attention(&graph);
            let layers = count_ops(&graph, |op| matches!(op, Op::AttentionContext { .. }));
            let unfused = |op: &Op| {
                matches!(
                    op,
                    Op::AttentionScores { .. }
                        | Op::MaskedSoftmax { .. }
                        | Op::AttentionContext { .. }
                )
            };
            assert_eq!(count_ops(&fused, unfused), 0);
            let attention = count_ops(&fused, |op| matches!(op, Op::Attention { .. }));
            assert_eq!(attention, layers);
            same_outputs(&graph, &fused, 0.0);
        }
    }
}
