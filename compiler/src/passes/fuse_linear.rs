//! GEMM + bias (+ GELU) as one op: MatMul whose only reader is an AddBias,
//! optionally followed by a Gelu that is the only reader of that, becomes a
//! Linear, so the product never makes a round trip through memory.

use crate::ir::{Graph, Op, Source, ValueId};

use super::rewrite::{apply, op_of, Rewrite};

pub fn fuse_linear(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let mut rewrite = Rewrite::default();
    // The MatMul + AddBias below `id`, when `id` is an AddBias that qualifies.
    let matmul_bias = |id: ValueId| -> Option<(ValueId, ValueId, ValueId, ValueId)> {
        let Some(&Op::AddBias { x: product, bias }) = op_of(graph, id) else {
            return None;
        };
        let Some(&Op::MatMul { x, weight }) = op_of(graph, product) else {
            return None;
        };
        (readers[product.index()] == 1).then_some((product, x, weight, bias))
    };
    for (id, value) in graph.values() {
        let Source::Op(op) = &value.source else {
            continue;
        };
        if let Op::Gelu { x: biased } = *op {
            if readers[biased.index()] != 1 {
                continue;
            }
            if let Some((product, x, weight, bias)) = matmul_bias(biased) {
                rewrite.replace.insert(
                    id,
                    Op::Linear {
                        x,
                        weight,
                        bias,
                        gelu: true,
                    },
                );
                rewrite.absorbed.extend([product, biased]);
            }
        }
    }
    for (id, _) in graph.values() {
        if rewrite.absorbed.contains(&id) {
            continue;
        }
        if let Some((product, x, weight, bias)) = matmul_bias(id) {
            rewrite.replace.insert(
                id,
                Op::Linear {
                    x,
                    weight,
                    bias,
                    gelu: false,
                },
            );
            rewrite.absorbed.insert(product);
        }
    }
    apply(graph, &rewrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use xltc_runtime::ModelInputs;

    fn weight(g: &mut Graph, name: &str, shape: &[usize]) -> ValueId {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5).collect();
        g.weight(name, shape.to_vec(), data.into())
    }

    #[test]
    fn matmul_bias_gelu_becomes_one_linear_with_the_same_result() {
        let mut g = Graph::new(1, 1);
        let x = weight(&mut g, "x", &[3, 5]);
        let w = weight(&mut g, "w", &[4, 5]);
        let w2 = weight(&mut g, "w2", &[4, 4]);
        let b = weight(&mut g, "b", &[4]);
        let m = g.op("m", Op::MatMul { x, weight: w });
        let y = g.op("y", Op::AddBias { x: m, bias: b });
        let z = g.op("z", Op::Gelu { x: y });
        let t = g.op("t", Op::MatMul { x: z, weight: w2 });
        let u = g.op("u", Op::AddBias { x: t, bias: b });
        g.mark_output("u", u);
        let fused = fuse_linear(&g);
        let ops: Vec<&Op> = fused
            .values()
            .filter_map(|(_, v)| match &v.source {
                Source::Op(op) => Some(op),
                _ => None,
            })
            .collect();
        assert_eq!(ops.len(), 2);
        assert!(matches!(ops[0], Op::Linear { gelu: true, .. }));
        assert!(matches!(ops[1], Op::Linear { gelu: false, .. }));
        let inputs = ModelInputs {
            batch: 1,
            seq: 1,
            input_ids: vec![0],
            token_type_ids: vec![0],
            position_ids: vec![0],
            attention_mask: vec![1.0],
        };
        let expected = reference::run(&g, &inputs).unwrap();
        let actual = reference::run(&fused, &inputs).unwrap();
        assert_eq!(expected["u"], actual["u"]);
    }
}
