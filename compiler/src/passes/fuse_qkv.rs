//! Q, K and V as one GEMM: the three Linears that project one input to the
//! queries, keys and values of an attention op become one Linear over their
//! weights and biases packed side by side ([3 width, in]), whose output
//! holds Q, K and V in each row; the attention op reads it packed. One
//! dispatch with three times the columns in place of three.

use crate::ir::{Graph, Op, Source, ValueId};

use super::rewrite::{apply, op_of, Rewrite};

pub fn fuse_qkv(graph: &Graph) -> Graph {
    let readers = graph.readers();
    // The input, weight and bias of a Linear without GELU read only once.
    let projection = |id: ValueId| match op_of(graph, id) {
        Some(&Op::Linear {
            x,
            weight,
            bias,
            gelu: false,
        }) if readers[id.index()] == 1 => Some((x, weight, bias)),
        _ => None,
    };
    let is_weight = |id: ValueId| matches!(graph.value(id).source, Source::Weight(_));
    let mut rewrite = Rewrite::default();
    for (id, value) in graph.values() {
        let Source::Op(Op::Attention {
            query,
            key,
            value: values,
            mask,
            heads,
            packed: false,
        }) = value.source
        else {
            continue;
        };
        let projections = [query, key, values];
        let [Some(q), Some(k), Some(v)] = projections.map(projection) else {
            continue;
        };
        let distinct = query != key && key != values && query != values;
        let params = [q.1, k.1, v.1, q.2, k.2, v.2];
        if !distinct || q.0 != k.0 || q.0 != v.0 || !params.iter().all(|&p| is_weight(p)) {
            continue;
        }
        // Built where the last projection was: every weight exists by then.
        let last = *projections.iter().max().expect("three");
        let query_name = &graph.value(query).name;
        let name = match query_name.strip_suffix("query") {
            Some(stem) => format!("{stem}qkv"),
            None => format!("{query_name}.qkv"),
        };
        let [rows, columns] = [0, 1].map(|axis| graph.value(q.1).shape[axis]);
        let x = q.0;
        rewrite.build.insert(
            last,
            Box::new(move |g: &mut Graph, map: &dyn Fn(ValueId) -> ValueId| {
                let weight = g.concat(
                    &format!("{name}.weight"),
                    [params[0], params[1], params[2]].map(map).to_vec(),
                    vec![3 * rows, columns],
                );
                let bias = g.concat(
                    &format!("{name}.bias"),
                    [params[3], params[4], params[5]].map(map).to_vec(),
                    vec![3 * rows],
                );
                let op = Op::Linear {
                    x: map(x),
                    weight,
                    bias,
                    gelu: false,
                };
                g.op(name.clone(), op)
            }),
        );
        rewrite
            .absorbed
            .extend(projections.iter().filter(|&&p| p != last));
        rewrite.replace.insert(
            id,
            Op::Attention {
                query: last,
                key: last,
                value: last,
                mask,
                heads,
                packed: true,
            },
        );
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testing::{count_ops, same_outputs, tiny_graph};
    use crate::passes::{fuse_attention, fuse_linear};

    #[test]
    fn three_projections_become_one_gemm_read_packed_with_the_same_result() {
        for model in ["tiny-bert", "tiny-xlmr"] {
            let graph = fuse_attention(&fuse_linear(&tiny_graph(model)));
            let fused = fuse_qkv(&graph);
            let linears = |g: &Graph| count_ops(g, |op| matches!(op, Op::Linear { .. }));
            let packed = count_ops(&fused, |op| {
                matches!(op, Op::Attention { packed: true, .. })
            });
            let layers = count_ops(&graph, |op| matches!(op, Op::Attention { .. }));
            assert!(layers > 0);
            assert_eq!(packed, layers);
            assert_eq!(linears(&graph) - linears(&fused), 2 * layers);
            let (_, qkv) = fused
                .values()
                .find(|(_, v)| v.name == "encoder.layer.0.attention.self.qkv")
                .expect("named after the query projection");
            let hidden = graph
                .value(graph.output("last_hidden_state").unwrap())
                .shape[1];
            assert_eq!(qkv.shape[1], 3 * hidden);
            same_outputs(&graph, &fused, 0.0);
        }
    }

    #[test]
    fn projections_of_different_inputs_are_left_alone() {
        let mut g = crate::ir::Graph::new(1, 2);
        let weight = |g: &mut Graph, name: &str, shape: Vec<usize>| {
            let n = shape.iter().product();
            g.weight(name, shape, vec![0.5; n].into())
        };
        let (x, y) = (
            weight(&mut g, "x", vec![2, 4]),
            weight(&mut g, "y", vec![2, 4]),
        );
        let linear = |g: &mut Graph, input: ValueId, name: &str| {
            let w = weight(g, &format!("{name}.w"), vec![4, 4]);
            let b = weight(g, &format!("{name}.b"), vec![4]);
            g.op(
                name,
                Op::Linear {
                    x: input,
                    weight: w,
                    bias: b,
                    gelu: false,
                },
            )
        };
        let (q, k, v) = (
            linear(&mut g, x, "q"),
            linear(&mut g, y, "k"),
            linear(&mut g, x, "v"),
        );
        let mask = g.input(crate::ir::Input::AttentionMask);
        let out = g.op(
            "c",
            Op::Attention {
                query: q,
                key: k,
                value: v,
                mask,
                heads: 2,
                packed: false,
            },
        );
        g.mark_output("c", out);
        let fused = fuse_qkv(&g);
        assert_eq!(count_ops(&fused, |op| matches!(op, Op::Linear { .. })), 3);
    }
}
