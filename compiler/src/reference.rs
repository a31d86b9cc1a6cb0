//! The CPU reference: every IR op as a plain function over f32 slices
//! (`matmul_forward`, `layer_norm_forward`, ...), accumulating in f64, and an
//! interpreter that runs a graph with them in arena order. It is the oracle
//! that every GPU kernel is tested against, so clarity comes before speed;
//! rows are spread over threads where that costs nothing in clarity.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rayon::prelude::*;
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

/// Rows of `table` (rows of `width`) picked by `ids`.
pub fn gather_forward(
    table: &[f32],
    width: usize,
    ids: &[u32],
    table_name: &str,
) -> Result<Vec<f32>, ReferenceError> {
    let rows = table.len() / width;
    let mut out = Vec::with_capacity(ids.len() * width);
    for &id in ids {
        let row = id as usize;
        if row >= rows {
            return Err(ReferenceError::IndexOutOfRange {
                table: table_name.to_owned(),
                id,
                rows,
            });
        }
        out.extend_from_slice(&table[row * width..(row + 1) * width]);
    }
    Ok(out)
}

/// The fused Linear: matmul, bias, then GELU when asked; the reference is the
/// composition of the un-fused references.
pub fn linear_forward(x: &[f32], weight: &[f32], bias: &[f32], k: usize, gelu: bool) -> Vec<f32> {
    let out = add_bias_forward(&matmul_forward(x, weight, k), bias);
    if gelu {
        gelu_forward(&out)
    } else {
        out
    }
}

/// The fused embeddings: `table` holds the word, token type and position
/// rows (`rows` of each) then gamma and beta; `ids` the three kinds of ids one
/// after another. Gathers summed as (word + type) + position, then LayerNorm:
/// the composition of the un-fused references. `names` name the three tables
/// in an error.
pub fn embeddings_forward(
    table: &[f32],
    width: usize,
    ids: &[u32],
    rows: [usize; 3],
    names: [&str; 3],
    eps: f32,
) -> Result<Vec<f32>, ReferenceError> {
    let (blocks, norm) = table.split_at((rows[0] + rows[1] + rows[2]) * width);
    let (gamma, beta) = norm.split_at(width);
    let (words, rest) = blocks.split_at(rows[0] * width);
    let (types, positions) = rest.split_at(rows[1] * width);
    let tokens = ids.len() / 3;
    let gather = |kind: usize, table: &[f32]| {
        let ids = &ids[kind * tokens..(kind + 1) * tokens];
        gather_forward(table, width, ids, names[kind])
    };
    let sum = add_forward(&gather(0, words)?, &gather(1, types)?);
    let sum = add_forward(&sum, &gather(2, positions)?);
    Ok(layer_norm_forward(&sum, gamma, beta, eps))
}

/// The fused GEMM + bias + residual + LayerNorm: the composition of the
/// un-fused references.
pub fn linear_norm_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    let k = weight.len() / bias.len();
    let sum = add_forward(&linear_forward(x, weight, bias, k, false), residual);
    layer_norm_forward(&sum, gamma, beta, eps)
}

/// The fused classification head: first token, dense + tanh, output
/// projection; the composition of the un-fused references.
pub fn head_forward(
    x: &[f32],
    seq: usize,
    dense_weight: &[f32],
    dense_bias: &[f32],
    out_weight: &[f32],
    out_bias: &[f32],
) -> Vec<f32> {
    let width = dense_bias.len();
    let first = first_token_forward(x, seq, width);
    let pooled = tanh_forward(&linear_forward(
        &first,
        dense_weight,
        dense_bias,
        width,
        false,
    ));
    linear_forward(&pooled, out_weight, out_bias, width, false)
}

/// The fused attention: the composition of the three un-fused references.
pub fn attention_forward(
    query: &[f32],
    key: &[f32],
    value: &[f32],
    mask: &[f32],
    s: AttentionShape,
) -> Vec<f32> {
    let scores = attention_scores_forward(query, key, s);
    let probs = masked_softmax_forward(&scores, mask, s.seq);
    attention_context_forward(&probs, value, s)
}

pub fn add_forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(&x, &y)| x + y).collect()
}

/// x [m, k] times weight [n, k] transposed: [m, n]. Each output is one f64 dot
/// product; rows of x are taken a few at a time so each weight row is read
/// once per block.
pub fn matmul_forward(x: &[f32], weight: &[f32], k: usize) -> Vec<f32> {
    const ROWS_PER_TASK: usize = 8;
    let n = weight.len() / k;
    let m = x.len() / k;
    let mut out = vec![0.0f32; m * n];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(k * ROWS_PER_TASK))
        .for_each(|(out_rows, x_rows)| {
            for (j, w_row) in weight.chunks_exact(k).enumerate() {
                for (i, x_row) in x_rows.chunks_exact(k).enumerate() {
                    out_rows[i * n + j] = dot_f64(x_row, w_row) as f32;
                }
            }
        });
    out
}

/// Dot product of two f32 vectors, summed in f64 over eight lanes.
fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    const LANES: usize = 8;
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum();
    let mut lanes = [0.0f64; LANES];
    for (xs, ys) in a_blocks.zip(b_blocks) {
        for l in 0..LANES {
            lanes[l] += xs[l] as f64 * ys[l] as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

pub fn add_bias_forward(x: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
    out
}

/// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in f64.
pub fn gelu_forward(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .map(|&v| {
            let v = v as f64;
            (0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2))) as f32
        })
        .collect()
}

pub fn tanh_forward(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| (v as f64).tanh() as f32).collect()
}

/// LayerNorm over rows of `gamma.len()`: mean and biased variance in f64.
pub fn layer_norm_forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let width = gamma.len();
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(out_row, row)| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
            let variance =
                row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            let inv_std = 1.0 / (variance + eps as f64).sqrt();
            for (i, o) in out_row.iter_mut().enumerate() {
                let normed = (row[i] as f64 - mean) * inv_std;
                *o = (normed * gamma[i] as f64 + beta[i] as f64) as f32;
            }
        });
    out
}

/// The sizes attention works over: token-wise activations are
/// [batch * seq, heads * head_dim].
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn new(batch: usize, seq: usize, heads: usize, width: usize) -> Self {
        Self {
            batch,
            seq,
            heads,
            head_dim: width / heads,
        }
    }

    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The slice of head `h` in token `t`'s row.
    fn head<'a>(&self, x: &'a [f32], token: usize, h: usize) -> &'a [f32] {
        let start = token * self.width() + h * self.head_dim;
        &x[start..start + self.head_dim]
    }
}

/// scores[b, h, i, j] = <q_i, k_j> / sqrt(head_dim) within head h of sequence b.
pub fn attention_scores_forward(query: &[f32], key: &[f32], s: AttentionShape) -> Vec<f32> {
    let scale = 1.0 / (s.head_dim as f64).sqrt();
    let mut out = vec![0.0f32; s.batch * s.heads * s.seq * s.seq];
    out.par_chunks_mut(s.seq * s.seq)
        .enumerate()
        .for_each(|(bh, block)| {
            let (b, h) = (bh / s.heads, bh % s.heads);
            for i in 0..s.seq {
                let q = s.head(query, b * s.seq + i, h);
                for j in 0..s.seq {
                    let k = s.head(key, b * s.seq + j, h);
                    block[i * s.seq + j] = (dot_f64(q, k) * scale) as f32;
                }
            }
        });
    out
}

/// Softmax over each row of `seq` scores, padding keys (mask 0) excluded.
pub fn masked_softmax_forward(scores: &[f32], mask: &[f32], seq: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; scores.len()];
    let rows_per_sequence = scores.len() / (mask.len() / seq) / seq;
    out.par_chunks_mut(seq)
        .zip(scores.par_chunks(seq))
        .enumerate()
        .for_each(|(r, (out_row, row))| {
            let b = r / rows_per_sequence;
            let keep = &mask[b * seq..(b + 1) * seq];
            let kept = || {
                row.iter()
                    .zip(keep)
                    .filter(|(_, &m)| m > 0.0)
                    .map(|(&v, _)| v as f64)
            };
            let max = kept().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = kept().map(|v| (v - max).exp()).sum();
            for ((o, &v), &m) in out_row.iter_mut().zip(row).zip(keep) {
                *o = if m > 0.0 {
                    ((v as f64 - max).exp() / sum) as f32
                } else {
                    0.0
                };
            }
        });
    out
}

/// context[b * seq + i, head h] = sum_j probs[b, h, i, j] * value[b * seq + j, head h].
pub fn attention_context_forward(probs: &[f32], value: &[f32], s: AttentionShape) -> Vec<f32> {
    let mut out = vec![0.0f32; value.len()];
    out.par_chunks_mut(s.seq * s.width())
        .enumerate()
        .for_each(|(b, sequence_out)| {
            for h in 0..s.heads {
                for i in 0..s.seq {
                    let p_row = &probs[((b * s.heads + h) * s.seq + i) * s.seq..][..s.seq];
                    let mut acc = vec![0.0f64; s.head_dim];
                    for (j, &p) in p_row.iter().enumerate() {
                        let v = s.head(value, b * s.seq + j, h);
                        for (a, &vv) in acc.iter_mut().zip(v) {
                            *a += p as f64 * vv as f64;
                        }
                    }
                    let start = i * s.width() + h * s.head_dim;
                    for (o, a) in sequence_out[start..start + s.head_dim].iter_mut().zip(acc) {
                        *o = a as f32;
                    }
                }
            }
        });
    out
}

/// Row 0 of every sequence of `seq` rows.
pub fn first_token_forward(x: &[f32], seq: usize, width: usize) -> Vec<f32> {
    x.chunks(seq * width)
        .flat_map(|sequence| &sequence[..width])
        .copied()
        .collect()
}

/// The mean of each sequence's rows whose mask is set.
pub fn mean_pool_forward(x: &[f32], mask: &[f32], seq: usize) -> Vec<f32> {
    let width = x.len() / mask.len();
    let mut out = Vec::with_capacity(mask.len() / seq * width);
    for (sequence, keep) in x.chunks(seq * width).zip(mask.chunks(seq)) {
        let mut sum = vec![0.0f64; width];
        for (row, &m) in sequence.chunks(width).zip(keep) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += m as f64 * v as f64;
            }
        }
        let count = keep.iter().map(|&m| m as f64).sum::<f64>().max(1e-9);
        out.extend(sum.iter().map(|&s| (s / count) as f32));
    }
    out
}

/// Each row over its L2 norm, the norm clamped below at 1e-12 (as PyTorch's
/// `normalize` does).
pub fn l2_normalize_forward(x: &[f32], width: usize) -> Vec<f32> {
    x.chunks(width)
        .flat_map(|row| {
            let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            row.iter()
                .map(move |&v| (v as f64 / norm.max(1e-12)) as f32)
        })
        .collect()
}

/// Softmax over rows of `width`, in f64.
pub fn softmax_forward(x: &[f32], width: usize) -> Vec<f32> {
    x.chunks(width)
        .flat_map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            row.iter()
                .map(move |&v| ((v as f64 - max).exp() / sum) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    }

    #[test]
    fn matmul_uses_the_linear_weight_layout_on_odd_shapes() {
        // x [3, 2] times w [2, 2]^T; and a k that is not a multiple of the lanes.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, 1.0, -1.0];
        assert_eq!(
            matmul_forward(&x, &w, 2),
            vec![1.0, -1.0, 3.0, -1.0, 5.0, -1.0]
        );
        let k = 11;
        let x: Vec<f32> = (0..9 * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let w: Vec<f32> = (0..5 * k).map(|i| (i % 5) as f32 * 0.5).collect();
        let out = matmul_forward(&x, &w, k);
        for i in 0..9 {
            for j in 0..5 {
                let expected: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
                assert!((out[i * 5 + j] - expected).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn gelu_is_the_exact_erf_form() {
        // 0.5 x (1 + erf(x / sqrt 2)) at known points.
        let out = gelu_forward(&[0.0, 1.0, -1.0, 3.0]);
        assert!(
            close(&out, &[0.0, 0.841_344_7, -0.158_655_3, 2.995_950_5]),
            "{out:?}"
        );
    }

    #[test]
    fn layer_norm_uses_biased_variance_gamma_and_beta() {
        let out = layer_norm_forward(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0], &[0.0, 1.0], 0.0);
        assert!(close(&out, &[-1.0, 3.0, -1.0, 3.0]), "{out:?}");
    }

    #[test]
    fn masked_softmax_gives_padding_keys_zero() {
        // batch 1, heads 1, seq 3; the last key is padding.
        let scores = [0.0, 0.0, 50.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        let out = masked_softmax_forward(&scores, &[1.0, 1.0, 0.0], 3);
        assert!(close(&out[..3], &[0.5, 0.5, 0.0]), "{out:?}");
        let e = 1.0f32.exp();
        assert!(close(&out[3..6], &[1.0 / (1.0 + e), e / (1.0 + e), 0.0]));
    }

    #[test]
    fn attention_attends_within_each_head_and_sequence() {
        // batch 2, seq 2, 2 heads of dim 1: each query matches one key.
        let s = AttentionShape::new(2, 2, 2, 2);
        let q = [10.0, 0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 0.0];
        let k = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        let scores = attention_scores_forward(&q, &k, s);
        assert_eq!(scores.len(), 2 * 2 * 2 * 2);
        // head_dim 1, so the scale is 1.
        assert_eq!(scores[0..2], [10.0, 0.0]);
        let probs = masked_softmax_forward(&scores, &[1.0; 4], 2);
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let context = attention_context_forward(&probs, &v, s);
        // Token 0, head 0 attends to token 0 (value 1); head 1 is even (2 and 4).
        assert!((context[0] - 1.0).abs() < 1e-3, "{context:?}");
        assert!((context[1] - 3.0).abs() < 1e-3, "{context:?}");
    }

    #[test]
    fn pooling_and_normalising_skip_padding() {
        let x = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let pooled = mean_pool_forward(&x, &[1.0, 1.0, 0.0], 3);
        assert!(close(&pooled, &[2.0, 3.0]));
        assert!(close(&first_token_forward(&x, 3, 2), &[1.0, 2.0]));
        assert!(close(
            &l2_normalize_forward(&[3.0, 4.0, 0.0, 0.0], 2),
            &[0.6, 0.8, 0.0, 0.0]
        ));
        assert!(close(
            &softmax_forward(&[0.0, 0.0, 1.0, 1.0], 2),
            &[0.5, 0.5, 0.5, 0.5]
        ));
    }

    #[test]
    fn gather_refuses_ids_beyond_the_table() {
        let table = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(
            gather_forward(&table, 2, &[1, 0], "t").unwrap(),
            vec![2.0, 3.0, 0.0, 1.0]
        );
        let err = gather_forward(&table, 2, &[2], "embeddings.word_embeddings.weight").unwrap_err();
        assert!(err
            .to_string()
            .contains("embeddings.word_embeddings.weight: id 2"));
    }
}
