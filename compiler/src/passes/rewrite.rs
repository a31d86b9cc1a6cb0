//! What fusion passes share: counting a value's readers, and rebuilding a
//! graph with some ops replaced and the values they absorbed left out.

use std::collections::{HashMap, HashSet};

use crate::ir::{Graph, Op, Source, ValueId};

/// How many ops read each value; graph outputs count as a reader.
pub fn readers(graph: &Graph) -> Vec<usize> {
    let mut count = vec![0; graph.values().count()];
    for (_, value) in graph.values() {
        if let Source::Op(op) = &value.source {
            for operand in op.operands() {
                count[operand.index()] += 1;
            }
        }
    }
    for (_, id) in graph.outputs() {
        count[id.index()] += 1;
    }
    count
}

/// Ops to put in place of values (written over the old graph's ids), and the
/// values that are no longer needed once they are.
#[derive(Default)]
pub struct Rewrite {
    pub replace: HashMap<ValueId, Op>,
    pub absorbed: HashSet<ValueId>,
}

pub fn apply(graph: &Graph, rewrite: &Rewrite) -> Graph {
    let mut out = Graph::new(graph.batch, graph.seq);
    let mut new_id: HashMap<ValueId, ValueId> = HashMap::new();
    for (id, value) in graph.values() {
        if rewrite.absorbed.contains(&id) {
            continue;
        }
        let fresh = match &value.source {
            Source::Input(input) => out.input(*input),
            Source::Weight(data) => out.weight(&value.name, value.shape.clone(), data.clone()),
            Source::Op(op) => {
                let op = rewrite.replace.get(&id).unwrap_or(op);
                out.op(value.name.clone(), op.map_operands(|o| new_id[&o]))
            }
        };
        new_id.insert(id, fresh);
    }
    for (name, id) in graph.outputs() {
        out.mark_output(name, new_id[id]);
    }
    out
}

/// The op that produces `id`, if it is an op's value.
pub fn op_of(graph: &Graph, id: ValueId) -> Option<&Op> {
    match &graph.value(id).source {
        Source::Op(op) => Some(op),
        _ => None,
    }
}
