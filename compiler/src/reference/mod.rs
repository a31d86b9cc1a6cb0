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
mod optimizer;
mod products;
mod real;

pub use backward::*;
pub use forward::*;
pub use optimizer::{adamw_step, clip_by_global_norm, decays, linear_schedule, AdamW};
pub use products::Products;
pub use real::Real;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use xltc_runtime::ModelInputs;
pub use xltc_runtime::TrainingInputs;

use crate::ir::{Graph, Input, Op, Source, ValueId};

/// A dense row-major tensor (f32 unless asked otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T = f32> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T> Tensor<T> {
    /// Row `i` of a tensor seen as [shape[0], rest].
    pub fn row(&self, i: usize) -> &[T] {
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
    #[error("the graph reads {name} ({expected} values), which the caller gave {given} of")]
    MissingInput {
        name: &'static str,
        expected: usize,
        given: usize,
    },
}

/// A value while the graph runs: weights and inputs are borrowed where the
/// element type allows, not copied.
enum Data<'a, T: Real> {
    F(Cow<'a, [T]>),
    U32(Cow<'a, [u32]>),
}

impl<T: Real> Data<'_, T> {
    fn f(&self) -> &[T] {
        match self {
            Data::F(v) => v,
            Data::U32(_) => unreachable!("graph builder gave an id input to a float operand"),
        }
    }

    fn u32(&self) -> &[u32] {
        match self {
            Data::U32(v) => v,
            Data::F(_) => unreachable!("graph builder gave a float value as ids"),
        }
    }
}

/// Runs `graph` on `inputs` in f32 and returns its named outputs.
/// max |actual - expected| / max |expected|: the error relative to the
/// tensor's scale, so that values near zero do not dominate; infinite when
/// the two differ in length or either holds a NaN or an infinity. The tolerance every GPU kernel, tuned choice
/// and fast product is held to is stated in these terms.
pub fn relative_error<T: Copy + Into<f64>>(actual: &[T], expected: &[T]) -> f64 {
    if actual.len() != expected.len() {
        return f64::INFINITY;
    }
    // A NaN or an infinity anywhere is no agreement (max() would skip a NaN).
    let finite = |v: &[T]| v.iter().all(|&x| x.into().is_finite());
    if !finite(actual) || !finite(expected) {
        return f64::INFINITY;
    }
    let scale = expected.iter().fold(0.0f64, |m, &v| m.max(v.into().abs()));
    let difference = actual
        .iter()
        .zip(expected)
        .fold(0.0f64, |m, (&a, &e)| m.max((a.into() - e.into()).abs()));
    difference / scale.max(f64::MIN_POSITIVE)
}

pub fn run(
    graph: &Graph,
    inputs: &ModelInputs,
) -> Result<BTreeMap<String, Tensor>, ReferenceError> {
    run_in::<f32>(graph, inputs, &TrainingInputs::default())
}

/// Runs `graph` in f32 with fast matrix products ([`Products::Fast`]) and
/// the weights `weights` gives: the CPU path for running and training
/// models rather than checking kernels.
pub fn run_fast<'a>(
    graph: &'a Graph,
    inputs: &'a ModelInputs,
    training: &'a TrainingInputs,
    weights: &WeightData<'a>,
) -> Result<BTreeMap<String, Tensor>, ReferenceError> {
    run_with::<f32>(graph, inputs, training, Products::Fast, weights)
}

/// Runs `graph` in `T` (f32, or f64 for finite-difference checks) on the
/// model and training inputs and returns its named outputs.
pub fn run_in<T: Real>(
    graph: &Graph,
    inputs: &ModelInputs,
    training: &TrainingInputs,
) -> Result<BTreeMap<String, Tensor<T>>, ReferenceError> {
    run_with(graph, inputs, training, Products::Exact, &|_| None)
}

/// Weight data the caller holds in place of a graph's own, by checkpoint
/// name (a trainer's current parameters): borrowed for the run, not copied.
pub type WeightData<'a> = dyn Fn(&str) -> Option<&'a [f32]> + 'a;

/// [`run_in`] with the matrix products computed as `products` says, and
/// each weight that `weights` gives (of the graph's size) read from there.
pub fn run_with<'a, T: Real>(
    graph: &'a Graph,
    inputs: &'a ModelInputs,
    training: &'a TrainingInputs,
    products: Products,
    weights: &WeightData<'a>,
) -> Result<BTreeMap<String, Tensor<T>>, ReferenceError> {
    if (inputs.batch, inputs.seq) != (graph.batch, graph.seq) {
        return Err(ReferenceError::InputShape {
            batch: inputs.batch,
            seq: inputs.seq,
            graph_batch: graph.batch,
            graph_seq: graph.seq,
        });
    }
    let last_use = graph.last_uses();
    let mut slots: Vec<Option<Data<T>>> = Vec::new();
    for (id, value) in graph.values() {
        let data = match &value.source {
            Source::Input(input) => input_data(inputs, training, *input, value.elements())?,
            Source::Weight(w) => {
                let given = weights(&value.name).filter(|data| data.len() == w.len());
                Data::F(T::from_f32_slice(given.unwrap_or(w)))
            }
            Source::Concat(pieces) => concat(
                pieces
                    .iter()
                    .map(|p| slots[p.index()].as_ref().expect("piece computed and alive")),
            ),
            Source::Op(op) => Data::F(Cow::Owned(execute(graph, op, &slots, products)?)),
        };
        slots.push(Some(data));
        for operand in value.source.operands() {
            if last_use[operand.index()] == id.index() {
                slots[operand.index()] = None;
            }
        }
    }
    // Outputs move out of their slots (a word-embedding gradient is
    // hundreds of megabytes); one named twice is copied.
    let mut outputs: BTreeMap<String, Tensor<T>> = BTreeMap::new();
    let mut moved: HashMap<ValueId, &str> = HashMap::new();
    for (name, id) in graph.outputs() {
        let data = match slots[id.index()].take() {
            Some(Data::F(values)) => values.into_owned(),
            Some(Data::U32(_)) => unreachable!("graph builder marked ids as an output"),
            None => outputs[moved[id]].data.clone(),
        };
        moved.insert(*id, name);
        let shape = graph.value(*id).shape.clone();
        outputs.insert(name.clone(), Tensor { shape, data });
    }
    Ok(outputs)
}

fn input_data<'a, T: Real>(
    inputs: &'a ModelInputs,
    training: &'a TrainingInputs,
    input: Input,
    expected: usize,
) -> Result<Data<'a, T>, ReferenceError> {
    let data = match input {
        Input::InputIds => Data::U32(Cow::Borrowed(&inputs.input_ids[..])),
        Input::TokenTypeIds => Data::U32(Cow::Borrowed(&inputs.token_type_ids[..])),
        Input::PositionIds => Data::U32(Cow::Borrowed(&inputs.position_ids[..])),
        Input::AttentionMask => Data::F(T::from_f32_slice(&inputs.attention_mask)),
        Input::Labels => Data::U32(Cow::Borrowed(&training.labels[..])),
        Input::ExampleMask => Data::F(T::from_f32_slice(&training.example_mask)),
        Input::WordEmbeddingDelta { .. } => {
            Data::F(T::from_f32_slice(&training.word_embedding_delta))
        }
        Input::DropoutKey => Data::U32(Cow::Borrowed(&training.dropout_key[..])),
    };
    let given = match &data {
        Data::F(v) => v.len(),
        Data::U32(v) => v.len(),
    };
    if given != expected {
        return Err(ReferenceError::MissingInput {
            name: input.name(),
            expected,
            given,
        });
    }
    Ok(data)
}

/// Pieces of one kind laid end to end.
fn concat<'a, 'b: 'a, T: Real>(pieces: impl Iterator<Item = &'a Data<'b, T>>) -> Data<'b, T> {
    let pieces: Vec<&Data<T>> = pieces.collect();
    match pieces[0] {
        Data::F(_) => Data::F(Cow::Owned(
            pieces.iter().flat_map(|p| p.f()).copied().collect(),
        )),
        Data::U32(_) => Data::U32(Cow::Owned(
            pieces.iter().flat_map(|p| p.u32()).copied().collect(),
        )),
    }
}

fn execute<T: Real>(
    graph: &Graph,
    op: &Op,
    slots: &[Option<Data<T>>],
    products: Products,
) -> Result<Vec<T>, ReferenceError> {
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
            gather_forward(get(table).f(), width(table), get(ids).u32(), name)?
        }
        Op::Add { a, b } => add_forward(get(a).f(), get(b).f()),
        Op::MatMul { x, weight } => products.matmul(get(x).f(), get(weight).f(), width(x)),
        Op::AddBias { x, bias } => add_bias_forward(get(x).f(), get(bias).f()),
        Op::Gelu { x } => gelu_forward(get(x).f()),
        Op::Tanh { x } => tanh_forward(get(x).f()),
        Op::LayerNorm {
            x,
            gamma,
            beta,
            eps,
        } => layer_norm_forward(get(x).f(), get(gamma).f(), get(beta).f(), eps),
        Op::AttentionScores { query, key, heads } => {
            let shape = AttentionShape::new(batch, seq, heads, width(query));
            products.attention_scores(get(query).f(), get(key).f(), shape)
        }
        Op::MaskedSoftmax { scores, mask } => {
            masked_softmax_forward(get(scores).f(), get(mask).f(), seq)
        }
        Op::AttentionContext {
            probs,
            value,
            heads,
        } => {
            let shape = AttentionShape::new(batch, seq, heads, width(value));
            products.attention_context(get(probs).f(), get(value).f(), shape)
        }
        Op::FirstToken { x } => first_token_forward(get(x).f(), seq, width(x)),
        Op::MeanPool { x, mask } => mean_pool_forward(get(x).f(), get(mask).f(), seq),
        Op::L2Normalize { x } => l2_normalize_forward(get(x).f(), width(x)),
        Op::Softmax { x } => softmax_forward(get(x).f(), width(x)),
        Op::Linear {
            x,
            weight,
            bias,
            gelu,
        } => {
            let (w, b, k) = (get(weight).f(), get(bias).f(), width(x));
            linear_forward(products, get(x).f(), w, b, k, gelu)
        }
        Op::Attention {
            query,
            key,
            value,
            mask,
            heads,
            packed,
        } => {
            let m = get(mask).f();
            if packed {
                let shape = AttentionShape::new(batch, seq, heads, width(query) / 3);
                let [q, k, v] = split_columns(get(query).f(), width(query), 3)
                    .try_into()
                    .expect("three parts");
                attention_forward(products, &q, &k, &v, m, shape)
            } else {
                let shape = AttentionShape::new(batch, seq, heads, width(query));
                let (q, k, v) = (get(query).f(), get(key).f(), get(value).f());
                attention_forward(products, q, k, v, m, shape)
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
            let (t, ids) = (get(table).f(), get(ids).u32());
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
            let (x, w, b) = (get(x).f(), get(weight).f(), get(bias).f());
            let (r, g, bt) = (get(residual).f(), get(gamma).f(), get(beta).f());
            linear_norm_forward(products, x, w, b, r, g, bt, eps)
        }
        Op::Head {
            x,
            dense_weight,
            dense_bias,
            out_weight,
            out_bias,
        } => {
            let (dw, db) = (get(dense_weight).f(), get(dense_bias).f());
            let (ow, ob) = (get(out_weight).f(), get(out_bias).f());
            head_forward(products, get(x).f(), seq, dw, db, ow, ob)
        }
        Op::CrossEntropy {
            logits,
            labels,
            example_mask,
        } => {
            let (l, y, m) = (get(logits).f(), get(labels).u32(), get(example_mask).f());
            vec![softmax_cross_entropy(l, y, m).0]
        }
        Op::CrossEntropyBackward {
            logits,
            labels,
            example_mask,
        } => {
            let (l, y, m) = (get(logits).f(), get(labels).u32(), get(example_mask).f());
            softmax_cross_entropy(l, y, m).1
        }
        Op::Alignment {
            x,
            example_mask,
            loss,
        } => vec![alignment(get(x).f(), width(x), get(example_mask).f(), loss).0],
        Op::AlignmentBackward {
            x,
            example_mask,
            loss,
        } => alignment(get(x).f(), width(x), get(example_mask).f(), loss).1,
        Op::MatMulBackwardX { dy, weight } => {
            products.matmul_backward_x(get(dy).f(), get(weight).f(), width(weight))
        }
        Op::MatMulBackwardWeight { dy, x } => {
            products.matmul_backward_weight(get(dy).f(), get(x).f(), width(x))
        }
        Op::ColumnSum { dy } => add_bias_backward(get(dy).f(), width(dy)),
        Op::GeluBackward { x, dy } => gelu_backward(get(x).f(), get(dy).f()),
        Op::TanhBackward { y, dy } => tanh_backward(get(y).f(), get(dy).f()),
        Op::LayerNormStatistics { x, eps } => {
            let (mean, rstd) = layer_norm_statistics(get(x).f(), width(x), eps);
            mean.into_iter()
                .zip(rstd)
                .flat_map(|(m, r)| [m, r])
                .collect()
        }
        Op::LayerNormBackwardX {
            dy,
            x,
            statistics,
            gamma,
        } => {
            let (mean, rstd) = unzip_statistics(get(statistics).f());
            layer_norm_backward(get(dy).f(), get(x).f(), &mean, &rstd, get(gamma).f()).0
        }
        Op::LayerNormBackwardGamma { dy, x, statistics } => {
            let (mean, rstd) = unzip_statistics(get(statistics).f());
            let ones = vec![T::from_f64(1.0); width(x)];
            layer_norm_backward(get(dy).f(), get(x).f(), &mean, &rstd, &ones).1
        }
        Op::MaskedSoftmaxBackward { probs, dy } => {
            masked_softmax_backward(get(probs).f(), get(dy).f(), seq)
        }
        Op::AttentionScoresBackward {
            dy,
            other,
            heads,
            of_key,
        } => {
            let shape = AttentionShape::new(batch, seq, heads, width(other));
            products.attention_scores_backward(get(dy).f(), get(other).f(), shape, of_key)
        }
        Op::AttentionContextBackwardProbs { dy, value, heads } => {
            let shape = AttentionShape::new(batch, seq, heads, width(value));
            products.attention_context_backward_probs(get(dy).f(), get(value).f(), shape)
        }
        Op::AttentionContextBackwardValue { dy, probs, heads } => {
            let shape = AttentionShape::new(batch, seq, heads, width(dy));
            products.attention_context_backward_value(get(dy).f(), get(probs).f(), shape)
        }
        Op::GatherBackward { dy, ids, rows } => {
            let w = width(dy);
            let (touched, sums) = gather_backward(get(dy).f(), get(ids).u32(), w);
            let mut dense = vec![T::default(); rows * w];
            for (row, sum) in touched.iter().zip(sums.chunks_exact(w)) {
                dense[*row as usize * w..][..w].copy_from_slice(sum);
            }
            dense
        }
        Op::FirstTokenBackward { dy } => first_token_backward(get(dy).f(), seq, width(dy)),
        Op::MeanPoolBackward { dy, mask } => mean_pool_backward(get(dy).f(), get(mask).f(), seq),
        Op::Dropout { x: a, key, site, p }
        | Op::DropoutBackward {
            dy: a,
            key,
            site,
            p,
        } => dropout_forward(get(a).f(), get(key).u32(), site, p),
    })
}

/// The [rows, 2] statistics LayerNormStatistics saves, as means and 1 / stds.
fn unzip_statistics<T: Real>(statistics: &[T]) -> (Vec<T>, Vec<T>) {
    statistics.chunks_exact(2).map(|p| (p[0], p[1])).unzip()
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
fn split_columns<T: Real>(x: &[T], width: usize, parts: usize) -> Vec<Vec<T>> {
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

#[cfg(test)]
mod tests {
    use super::relative_error;

    /// A NaN or an infinity on either side is an infinite error (a GPU
    /// kernel that writes NaN must fail its test), a length mismatch too,
    /// and otherwise the error is relative to the expected tensor's scale.
    #[test]
    fn relative_error_fails_on_nan_and_infinity() {
        let expected = [1.0f32, -2.0, 4.0];
        assert_eq!(relative_error(&[1.0f32, -2.0, 4.5], &expected), 0.125);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(relative_error(&[1.0, bad, 4.0], &expected), f64::INFINITY);
            assert_eq!(relative_error(&expected, &[1.0, bad, 4.0]), f64::INFINITY);
        }
        assert_eq!(relative_error(&[1.0f32], &expected), f64::INFINITY);
    }
}
