//! What fusion passes share: rebuilding a graph with some values computed
//! another way and the values they absorbed left out.

use std::collections::{HashMap, HashSet};

use crate::ir::{Graph, Op, Source, ValueId};

/// Adds to the new graph what stands for an old value (packed weights, then
/// the fused op, say), given the map from old ids to new ones; returns the
/// new id.
pub type Build = Box<dyn Fn(&mut Graph, &dyn Fn(ValueId) -> ValueId) -> ValueId>;

/// Ops to put in place of values (written over the old graph's ids), builders
/// for replacements that need new values too, and the values that are no
/// longer needed once they are.
#[derive(Default)]
pub struct Rewrite {
    pub replace: HashMap<ValueId, Op>,
    pub build: HashMap<ValueId, Build>,
    pub absorbed: HashSet<ValueId>,
}

pub fn apply(graph: &Graph, rewrite: &Rewrite) -> Graph {
    let mut out = Graph::new(graph.batch, graph.seq);
    let mut new_id: HashMap<ValueId, ValueId> = HashMap::new();
    for (id, value) in graph.values() {
        if rewrite.absorbed.contains(&id) {
            continue;
        }
        let map = |old: ValueId| new_id[&old];
        let fresh = if let Some(build) = rewrite.build.get(&id) {
            build(&mut out, &map)
        } else {
            match &value.source {
                Source::Input(input) => out.input(*input),
                Source::Weight(data) => out.weight(&value.name, value.shape.clone(), data.clone()),
                Source::Concat(pieces) => out.concat(
                    &value.name,
                    pieces.iter().map(|&p| map(p)).collect(),
                    value.shape.clone(),
                ),
                Source::Op(op) => {
                    let op = rewrite.replace.get(&id).unwrap_or(op);
                    out.op(value.name.clone(), op.map_operands(map))
                }
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

/// `graph` without the ops no output depends on (inputs and weights stay).
pub fn prune(graph: &Graph) -> Graph {
    let mut live = vec![false; graph.values().count()];
    for (_, id) in graph.outputs() {
        live[id.index()] = true;
    }
    for (id, value) in graph.values().collect::<Vec<_>>().into_iter().rev() {
        if live[id.index()] {
            for operand in value.source.operands() {
                live[operand.index()] = true;
            }
        }
    }
    let rewrite = Rewrite {
        absorbed: graph
            .values()
            .filter(|(id, v)| !live[id.index()] && matches!(v.source, Source::Op(_)))
            .map(|(id, _)| id)
            .collect(),
        ..Rewrite::default()
    };
    apply(graph, &rewrite)
}
