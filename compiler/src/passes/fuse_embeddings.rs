//! The embedding layer as one op: three gathers (word, token type and
//! position rows), the two adds that sum them as (word + type) + position,
//! and the LayerNorm become one Embeddings op. Its tables, gamma and beta are
//! packed into one table and its three kinds of ids into one buffer, so the
//! kernel binds the word table's row parts (up to six for XLM-R's 250k rows)
//! and still stays within WebGPU's eight storage buffers a stage.

use crate::ir::{Graph, Op, Source, ValueId};

use super::rewrite::{apply, op_of, Rewrite};

pub fn fuse_embeddings(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let once = |id: ValueId| readers[id.index()] == 1;
    let is = |id: ValueId, weight: bool| match graph.value(id).source {
        Source::Weight(_) => weight,
        Source::Input(_) => !weight,
        _ => false,
    };
    // The table and ids of a gather read only once, from a weight by an input.
    let gather = |id: ValueId| match op_of(graph, id) {
        Some(&Op::Gather { table, ids }) if once(id) && is(table, true) && is(ids, false) => {
            Some((table, ids))
        }
        _ => None,
    };
    let add = |id: ValueId| match op_of(graph, id) {
        Some(&Op::Add { a, b }) if once(id) => Some((a, b)),
        _ => None,
    };
    let mut rewrite = Rewrite::default();
    for (id, value) in graph.values() {
        let Source::Op(Op::LayerNorm {
            x,
            gamma,
            beta,
            eps,
        }) = value.source
        else {
            continue;
        };
        let Some((sum, position_rows)) = add(x) else {
            continue;
        };
        let Some((word_rows, type_rows)) = add(sum) else {
            continue;
        };
        let (Some(word), Some(kind), Some(position)) =
            (gather(word_rows), gather(type_rows), gather(position_rows))
        else {
            continue;
        };
        let width = graph.value(gamma).elements();
        let tables = [word.0, kind.0, position.0];
        let rows: Vec<usize> = tables.iter().map(|&t| graph.value(t).shape[0]).collect();
        let fits = tables.iter().all(|&t| graph.value(t).shape[1] == width);
        if !fits || !is(gamma, true) || !is(beta, true) {
            continue;
        }
        let name = value.name.clone();
        let ids = [word.1, kind.1, position.1];
        let tokens = graph.tokens();
        rewrite.build.insert(
            id,
            Box::new(move |g: &mut Graph, map: &dyn Fn(ValueId) -> ValueId| {
                let pieces = [tables[0], tables[1], tables[2], gamma, beta].map(map);
                let table_rows = rows.iter().sum::<usize>() + 2;
                let table = g.concat(
                    &format!("{name}.tables"),
                    pieces.to_vec(),
                    vec![table_rows, width],
                );
                let ids = g.concat(
                    &format!("{name}.ids"),
                    ids.map(map).to_vec(),
                    vec![3 * tokens],
                );
                let op = Op::Embeddings {
                    table,
                    ids,
                    words: rows[0],
                    types: rows[1],
                    eps,
                };
                g.op(name.clone(), op)
            }),
        );
        rewrite
            .absorbed
            .extend([x, sum, word_rows, type_rows, position_rows]);
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testing::{count_ops, same_outputs, tiny_graph};

    #[test]
    fn gathers_sums_and_layer_norm_become_one_op_with_the_same_result() {
        for model in ["tiny-bert", "tiny-xlmr"] {
            let graph = tiny_graph(model);
            let fused = fuse_embeddings(&graph);
            let gathers = |g: &Graph| count_ops(g, |op| matches!(op, Op::Gather { .. }));
            let embeddings = count_ops(&fused, |op| matches!(op, Op::Embeddings { .. }));
            assert_eq!((gathers(&graph), gathers(&fused), embeddings), (3, 0, 1));
            assert_eq!(
                count_ops(&graph, |op| matches!(op, Op::Add { .. }))
                    - count_ops(&fused, |op| matches!(op, Op::Add { .. })),
                2
            );
            same_outputs(&graph, &fused, 0.0);
        }
    }

    #[test]
    fn a_sum_read_twice_is_left_alone() {
        let mut graph = tiny_graph("tiny-bert");
        let (sum, _) = graph
            .values()
            .find(|(_, v)| v.name == "embeddings.sum")
            .unwrap();
        graph.mark_output("sum", sum);
        let fused = fuse_embeddings(&graph);
        assert_eq!(
            count_ops(&fused, |op| matches!(op, Op::Embeddings { .. })),
            0
        );
    }
}
