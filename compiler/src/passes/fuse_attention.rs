//! Attention as one op: AttentionScores, then MaskedSoftmax, then
//! AttentionContext, each the only reader of the one before, become one
//! Attention, so the [batch, heads, seq, seq] scores never reach memory.

use crate::ir::{Graph, Op, Source};

use super::rewrite::{apply, op_of, readers, Rewrite};

pub fn fuse_attention(graph: &Graph) -> Graph {
    let readers = readers(graph);
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
            },
        );
        rewrite.absorbed.extend([probs, scores]);
    }
    apply(graph, &rewrite)
}
