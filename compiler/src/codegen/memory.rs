//! Memory planning. Activations share buffers by liveness: each takes the
//! best-fitting free buffer (or a new one) and hands it back once its last
//! reader has run; an op's output never shares a buffer with its own operands,
//! since WebGPU forbids binding one buffer read-only and read-write in one
//! dispatch. Graph outputs keep their buffers. Weights too big for one storage
//! binding are split by rows (only embedding tables, read by gather, may be).

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{Graph, Source, ValueId};

/// Bindings a gather kernel has for the parts of its table.
pub const TABLE_PARTS: usize = 6;

/// Rows per part and the number of parts for a [rows, width] f32 table under
/// a binding limit of `max_binding_bytes`.
pub fn table_parts(rows: usize, width: usize, max_binding_bytes: u64) -> (usize, usize) {
    let row_bytes = (width * 4) as u64;
    let rows_per_part = ((max_binding_bytes / row_bytes.max(1)) as usize).clamp(1, rows.max(1));
    (rows_per_part, rows.div_ceil(rows_per_part).max(1))
}

/// Which activation buffer ("slot") each op's value lives in.
pub struct ActivationPlan {
    /// `slot_of[value]`: the slot of an op's value; None for inputs and weights.
    pub slot_of: Vec<Option<usize>>,
    pub slot_bytes: Vec<u64>,
}

/// Slots for every op's value except those of `direct` (written straight
/// into other buffers: a table's gradient added into its gradient buffers).
/// A value of `saved` (by the op whose kernel writes it beside its own
/// output: a LayerNorm's statistics) takes its slot with that op, and keeps
/// it until its last reader, as any value.
pub fn plan_activations(
    graph: &Graph,
    direct: &BTreeSet<ValueId>,
    saved: &BTreeMap<ValueId, ValueId>,
) -> ActivationPlan {
    let count = graph.values().count();
    let last_use = graph.last_uses();
    let mut plan = ActivationPlan {
        slot_of: vec![None; count],
        slot_bytes: Vec::new(),
    };
    let mut free: Vec<usize> = Vec::new();
    for (id, value) in graph.values() {
        let Source::Op(op) = &value.source else {
            continue;
        };
        if direct.contains(&id) {
            release_dead_operands(&plan, &last_use, id, &op.operands(), &mut free);
            continue;
        }
        let slot = match plan.slot_of[id.index()] {
            Some(slot) => slot,
            None => {
                let bytes = value.elements() as u64 * 4;
                let slot = take_slot(&mut plan.slot_bytes, &mut free, bytes);
                plan.slot_of[id.index()] = Some(slot);
                slot
            }
        };
        if let Some(&kept) = saved.get(&id) {
            let bytes = graph.value(kept).elements() as u64 * 4;
            let kept_slot = take_slot(&mut plan.slot_bytes, &mut free, bytes);
            plan.slot_of[kept.index()] = Some(kept_slot);
        }
        release_dead_operands(&plan, &last_use, id, &op.operands(), &mut free);
        // Nothing reads it and it is no output (a gradient a train step adds
        // into its buffer by the dispatch right after its kernel): the next
        // op may take its slot.
        if last_use[id.index()] == id.index() {
            free.push(slot);
        }
    }
    plan
}

/// The smallest free slot that fits; else the largest free slot, grown; else a new one.
fn take_slot(slot_bytes: &mut Vec<u64>, free: &mut Vec<usize>, bytes: u64) -> usize {
    let fitting = free
        .iter()
        .enumerate()
        .filter(|(_, &s)| slot_bytes[s] >= bytes)
        .min_by_key(|(_, &s)| slot_bytes[s]);
    let largest = || free.iter().enumerate().max_by_key(|(_, &s)| slot_bytes[s]);
    match fitting.or_else(largest) {
        Some((position, &slot)) => {
            free.swap_remove(position);
            slot_bytes[slot] = slot_bytes[slot].max(bytes);
            slot
        }
        None => {
            slot_bytes.push(bytes);
            slot_bytes.len() - 1
        }
    }
}

fn release_dead_operands(
    plan: &ActivationPlan,
    last_use: &[usize],
    reader: ValueId,
    operands: &[ValueId],
    free: &mut Vec<usize>,
) {
    for operand in operands {
        if last_use[operand.index()] != reader.index() {
            continue;
        }
        if let Some(slot) = plan.slot_of[operand.index()] {
            if !free.contains(&slot) {
                free.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Op;

    #[test]
    fn a_chain_reuses_two_buffers_and_never_aliases_an_operand() {
        let mut g = Graph::new(1, 1);
        let mut x = g.weight("x", vec![4, 4], vec![0.0; 16].into());
        let first = x;
        for i in 0..6 {
            x = g.op(format!("t{i}"), Op::Tanh { x });
        }
        g.mark_output("out", x);
        let plan = plan_activations(&g, &BTreeSet::new(), &BTreeMap::new());
        assert_eq!(plan.slot_bytes.len(), 2);
        for (id, value) in g.values() {
            if let Source::Op(op) = &value.source {
                for operand in op.operands() {
                    if operand != first {
                        assert_ne!(plan.slot_of[operand.index()], plan.slot_of[id.index()]);
                    }
                }
            }
        }
    }

    #[test]
    fn tables_split_under_the_binding_limit() {
        assert_eq!(table_parts(10, 4, 1 << 20), (10, 1));
        let (rows_per_part, parts) = table_parts(250_002, 768, 128 << 20);
        assert_eq!(parts, 6);
        assert!(rows_per_part as u64 * 768 * 4 <= 128 << 20);
    }
}
