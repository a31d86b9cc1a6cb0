//! The CPU reference: every IR op as a plain function over f32 or f64 slices
//! (`matmul_forward`, `layer_norm_forward`, ... in forward.rs; their
//! gradients, `matmul_backward`, `layer_norm_backward`, ... in backward.rs),
//! computing in f64, and an interpreter that runs a graph with them in arena
//! order. It is the oracle that every GPU kernel is tested against, so
//! clarity comes before speed; rows are spread over threads where that costs
//! nothing in clarity. In f64 it is the oracle of the gradients too, checked
//! against finite differences.

mod backward;
mod forward;
mod real;

pub use backward::*;
pub use forward::*;
pub use real::Real;

use std::borrow::Cow;
use std::collections::BTreeMap;

use xltc_runtime::ModelInputs;

use crate::ir::{Graph, Input, Op, Source, ValueId};

/// A dense row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Row `i` of a tensor seen as [shape[0], rest].
    pub fn row(&self, i: usize) -> &[f32] {
        let width = self.data.len() / self.shape[0].max(1);
        &self.data[i * width..(i + 1) * width]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("the inputs are {batch} x {seq} tokens but the graph was built for {graph_batch} x {graph_seq}")]
    InputShape {
        batch: usize,
        seq: usize,
        graph_batch: usize,
        graph_seq: usize,
    },
    #[error(
        "{table}: id {id} is out of range for its {rows} rows; does the tokenizer belong to \
         this model?"
    )]
    IndexOutOfRange { table: String, id: u32, rows: usize },
}

/// A value while the graph runs: weights and inputs are borrowed, not copied.
enum Data<'a> {
    F32(Cow<'a, [f32]>),
    U32(Cow<'a, [u32]>),
}

impl Data<'_> {
    fn f32(&self) -> &[f32] {
        match self {
            Data::F32(v) => v,
            Data::U32(_) => unreachable!("graph builder gave an id input to a float operand"),
        }
    }

    fn u32(&self) -> &[u32] {
        match self {
            Data::U32(v) => v,
            Data::F32(_) => unreachable!("graph builder gave a float value as ids"),
        }
    }
}

/// Runs `graph` on `inputs` and returns its named outputs.
pub fn run(
    graph: &Graph,
    inputs: &ModelInputs,
) -> Result<BTreeMap<String, Tensor>, ReferenceError> {
    if (inputs.batch, inputs.seq) != (graph.batch, graph.seq) {
        return Err(ReferenceError::InputShape {
            batch: inputs.batch,
            seq: inputs.seq,
            graph_batch: graph.batch,
            graph_seq: graph.seq,
        });
    }
    let last_use = graph.last_uses();
    let mut slots: Vec<Option<Data>> = Vec::new();
    for (id, value) in graph.values() {
        let data = match &value.source {
            Source::Input(input) => input_data(inputs, *input),
            Source::Weight(w) => Data::F32(Cow::Borrowed(w)),
            Source::Concat(pieces) => concat(
                pieces
                    .iter()
                    .map(|p| slots[p.index()].as_ref().expect("piece computed and alive")),
            ),
            Source::Op(op) => Data::F32(Cow::Owned(execute(graph, op, &slots)?)),
        };
        slots.push(Some(data));
        for operand in value.source.operands() {
            if last_use[operand.index()] == id.index() {
                slots[operand.index()] = None;
            }
        }
    }
    let outputs = graph.outputs().iter().map(|(name, id)| {
        let data = slots[id.index()]
            .as_ref()
            .expect("outputs are kept")
            .f32()
            .to_vec();
        let shape = graph.value(*id).shape.clone();
        (name.clone(), Tensor { shape, data })
    });
    Ok(outputs.collect())
}

fn input_data(inputs: &ModelInputs, input: Input) -> Data<'_> {
    match input {
        Input::InputIds => Data::U32(Cow::Borrowed(&inputs.input_ids)),
        Input::TokenTypeIds => Data::U32(Cow::Borrowed(&inputs.token_type_ids)),
        Input::PositionIds => Data::U32(Cow::Borrowed(&inputs.position_ids)),
        Input::AttentionMask => Data::F32(Cow::Borrowed(&inputs.attention_mask)),
    }
}

/// Pieces of one kind laid end to end.
fn concat<'a, 'b: 'a>(pieces: impl Iterator<Item = &'a Data<'b>>) -> Data<'b> {
    let pieces: Vec<&Data> = pieces.collect();
    match pieces[0] {
        Data::F32(_) => Data::F32(Cow::Owned(
            pieces.iter().flat_map(|p| p.f32()).copied().collect(),
        )),
        Data::U32(_) => Data::U32(Cow::Owned(
            pieces.iter().flat_map(|p| p.u32()).copied().collect(),
        )),
    }
}

fn execute(graph: &Graph, op: &Op, slots: &[Option<Data>]) -> Result<Vec<f32>, ReferenceError> {
    let get = |id: ValueId| {
        slots[id.index()]
            .as_ref()
            .expect("operand computed and alive")
    };
    let width = |id: ValueId| *graph.value(id).shape.last().expect("not a scalar");
    let (batch, seq) = (graph.batch, graph.seq);
    Ok(match *op {
        Op::Gather { table, ids } => {
            let name = &graph.value(table).name;
            gather_forward(get(table).f32(), width(table), get(ids).u32(), name)?
        }
        Op::Add { a, b } => add_forward(get(a).f32(), get(b).f32()),
        Op::MatMul { x, weight } => matmul_forward(get(x).f32(), get(weight).f32(), width(x)),
        Op::AddBias { x, bias } => add_bias_forward(get(x).f32(), get(bias).f32()),
        Op::Gelu { x } => gelu_forward(get(x).f32()),
        Op::Tanh { x } => tanh_forward(get(x).f32()),
        Op::LayerNorm {
            x,
            gamma,
            beta,
            eps,
        } => layer_norm_forward(get(x).f32(), get(gamma).f32(), get(beta).f32(), eps),
        Op::AttentionScores { query, key, heads } => {
            let shape = AttentionShape::new(batch, seq, heads, width(query));
            attention_scores_forward(get(query).f32(), get(key).f32(), shape)
        }
        Op::MaskedSoftmax { scores, mask } => {
            masked_softmax_forward(get(scores).f32(), get(mask).f32(), seq)
        }
        Op::AttentionContext {
            probs,
            value,
            heads,
        } => {
            let shape = AttentionShape::new(batch, seq, heads, width(value));
            attention_context_forward(get(probs).f32(), get(value).f32(), shape)
        }
        Op::FirstToken { x } => first_token_forward(get(x).f32(), seq, width(x)),
        Op::MeanPool { x, mask } => mean_pool_forward(get(x).f32(), get(mask).f32(), seq),
        Op::L2Normalize { x } => l2_normalize_forward(get(x).f32(), width(x)),
        Op::Softmax { x } => softmax_forward(get(x).f32(), width(x)),
        Op::Linear {
            x,
            weight,
            bias,
            gelu,
        } => linear_forward(
            get(x).f32(),
            get(weight).f32(),
            get(bias).f32(),
            width(x),
            gelu,
        ),
        Op::Attention {
            query,
            key,
            value,
            mask,
            heads,
            packed,
        } => {
            let m = get(mask).f32();
            if packed {
                let shape = AttentionShape::new(batch, seq, heads, width(query) / 3);
                let [q, k, v] = split_columns(get(query).f32(), width(query), 3)
                    .try_into()
                    .expect("three parts");
                attention_forward(&q, &k, &v, m, shape)
            } else {
                let shape = AttentionShape::new(batch, seq, heads, width(query));
                let (q, k, v) = (get(query).f32(), get(key).f32(), get(value).f32());
                attention_forward(q, k, v, m, shape)
            }
        }
        Op::Embeddings {
            table,
            ids,
            words,
            types,
            eps,
        } => {
            let rows = graph.value(table).shape[0];
            let positions = Op::position_rows(rows, words, types);
            let names = [0, 1, 2].map(|kind| piece_name(graph, table, kind));
            let (t, ids) = (get(table).f32(), get(ids).u32());
            embeddings_forward(t, width(table), ids, [words, types, positions], names, eps)?
        }
        Op::LinearNorm {
            x,
            weight,
            bias,
            residual,
            gamma,
            beta,
            eps,
        } => {
            let (x, w, b) = (get(x).f32(), get(weight).f32(), get(bias).f32());
            let (r, g, bt) = (get(residual).f32(), get(gamma).f32(), get(beta).f32());
            linear_norm_forward(x, w, b, r, g, bt, eps)
        }
        Op::Head {
            x,
            dense_weight,
            dense_bias,
            out_weight,
            out_bias,
        } => {
            let (dw, db) = (get(dense_weight).f32(), get(dense_bias).f32());
            let (ow, ob) = (get(out_weight).f32(), get(out_bias).f32());
            head_forward(get(x).f32(), seq, dw, db, ow, ob)
        }
    })
}

/// The name of piece `i` of `id` when it is a concatenation; its own name
/// otherwise.
fn piece_name(graph: &Graph, id: ValueId, i: usize) -> &str {
    match &graph.value(id).source {
        Source::Concat(pieces) => &graph.value(pieces[i]).name,
        _ => &graph.value(id).name,
    }
}

/// Rows of `width` cut into `parts` equal column blocks, each a matrix.
fn split_columns(x: &[f32], width: usize, parts: usize) -> Vec<Vec<f32>> {
    let part = width / parts;
    (0..parts)
        .map(|p| {
            x.chunks_exact(width)
                .flat_map(|row| &row[p * part..(p + 1) * part])
                .copied()
                .collect()
        })
        .collect()
}
