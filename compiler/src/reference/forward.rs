//! The forward of every IR op on the CPU, generic over f32 and f64
//! ([`Real`]): a plain function an op, named `<op>_forward`, computing in
//! f64. The fused ops' references are compositions of the un-fused ones.

use rayon::prelude::*;

use super::{Products, Real, ReferenceError};

/// Rows of `table` (rows of `width`) picked by `ids`.
pub fn gather_forward<T: Real>(
    table: &[T],
    width: usize,
    ids: &[u32],
    table_name: &str,
) -> Result<Vec<T>, ReferenceError> {
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
pub fn linear_forward<T: Real>(
    products: Products,
    x: &[T],
    weight: &[T],
    bias: &[T],
    k: usize,
    gelu: bool,
) -> Vec<T> {
    let out = add_bias_forward(&products.matmul(x, weight, k), bias);
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
pub fn embeddings_forward<T: Real>(
    table: &[T],
    width: usize,
    ids: &[u32],
    rows: [usize; 3],
    names: [&str; 3],
    eps: f32,
) -> Result<Vec<T>, ReferenceError> {
    let (blocks, norm) = table.split_at((rows[0] + rows[1] + rows[2]) * width);
    let (gamma, beta) = norm.split_at(width);
    let (words, rest) = blocks.split_at(rows[0] * width);
    let (types, positions) = rest.split_at(rows[1] * width);
    let tokens = ids.len() / 3;
    let gather = |kind: usize, table: &[T]| {
        let ids = &ids[kind * tokens..(kind + 1) * tokens];
        gather_forward(table, width, ids, names[kind])
    };
    let sum = add_forward(&gather(0, words)?, &gather(1, types)?);
    let sum = add_forward(&sum, &gather(2, positions)?);
    Ok(layer_norm_forward(&sum, gamma, beta, eps))
}

/// The fused GEMM + bias + residual + LayerNorm: the composition of the
/// un-fused references.
#[allow(clippy::too_many_arguments)]
pub fn linear_norm_forward<T: Real>(
    products: Products,
    x: &[T],
    weight: &[T],
    bias: &[T],
    residual: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f32,
) -> Vec<T> {
    let k = weight.len() / bias.len();
    let sum = add_forward(
        &linear_forward(products, x, weight, bias, k, false),
        residual,
    );
    layer_norm_forward(&sum, gamma, beta, eps)
}

/// The fused classification head: first token, dense + tanh, output
/// projection; the composition of the un-fused references.
pub fn head_forward<T: Real>(
    products: Products,
    x: &[T],
    seq: usize,
    dense_weight: &[T],
    dense_bias: &[T],
    out_weight: &[T],
    out_bias: &[T],
) -> Vec<T> {
    let width = dense_bias.len();
    let first = first_token_forward(x, seq, width);
    let pooled = tanh_forward(&linear_forward(
        products,
        &first,
        dense_weight,
        dense_bias,
        width,
        false,
    ));
    linear_forward(products, &pooled, out_weight, out_bias, width, false)
}

/// The fused attention: the composition of the three un-fused references.
pub fn attention_forward<T: Real>(
    products: Products,
    query: &[T],
    key: &[T],
    value: &[T],
    mask: &[T],
    s: AttentionShape,
) -> Vec<T> {
    let scores = products.attention_scores(query, key, s);
    let probs = masked_softmax_forward(&scores, mask, s.seq);
    products.attention_context(&probs, value, s)
}

pub fn add_forward<T: Real>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| T::from_f64(x.to_f64() + y.to_f64()))
        .collect()
}

/// x [m, k] times weight [n, k] transposed: [m, n]. Each output is one f64 dot
/// product; rows of x are taken a few at a time so each weight row is read
/// once per block.
pub fn matmul_forward<T: Real>(x: &[T], weight: &[T], k: usize) -> Vec<T> {
    const ROWS_PER_TASK: usize = 8;
    let n = weight.len() / k;
    let m = x.len() / k;
    let mut out = vec![T::default(); m * n];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(k * ROWS_PER_TASK))
        .for_each(|(out_rows, x_rows)| {
            for (j, w_row) in weight.chunks_exact(k).enumerate() {
                for (i, x_row) in x_rows.chunks_exact(k).enumerate() {
                    out_rows[i * n + j] = T::from_f64(dot_f64(x_row, w_row));
                }
            }
        });
    out
}

/// Dot product of two vectors, summed in f64 over eight lanes.
fn dot_f64<T: Real>(a: &[T], b: &[T]) -> f64 {
    const LANES: usize = 8;
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(&x, &y)| x.to_f64() * y.to_f64())
        .sum();
    let mut lanes = [0.0f64; LANES];
    for (xs, ys) in a_blocks.zip(b_blocks) {
        for l in 0..LANES {
            lanes[l] += xs[l].to_f64() * ys[l].to_f64();
        }
    }
    lanes.iter().sum::<f64>() + tail
}

pub fn add_bias_forward<T: Real>(x: &[T], bias: &[T]) -> Vec<T> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = T::from_f64(v.to_f64() + b.to_f64());
        }
    }
    out
}

/// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in f64.
pub fn gelu_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.par_iter()
        .map(|&v| {
            let v = v.to_f64();
            T::from_f64(0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2)))
        })
        .collect()
}

pub fn tanh_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(v.to_f64().tanh())).collect()
}

/// LayerNorm over rows of `gamma.len()`: mean and biased variance in f64.
pub fn layer_norm_forward<T: Real>(x: &[T], gamma: &[T], beta: &[T], eps: f32) -> Vec<T> {
    let width = gamma.len();
    let mut out = vec![T::default(); x.len()];
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(out_row, row)| {
            let mean = row.iter().map(|&v| v.to_f64()).sum::<f64>() / width as f64;
            let variance = row
                .iter()
                .map(|&v| (v.to_f64() - mean).powi(2))
                .sum::<f64>()
                / width as f64;
            let inv_std = 1.0 / (variance + eps as f64).sqrt();
            for (i, o) in out_row.iter_mut().enumerate() {
                let normed = (row[i].to_f64() - mean) * inv_std;
                *o = T::from_f64(normed * gamma[i].to_f64() + beta[i].to_f64());
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
    fn head<'a, T>(&self, x: &'a [T], token: usize, h: usize) -> &'a [T] {
        let start = token * self.width() + h * self.head_dim;
        &x[start..start + self.head_dim]
    }
}

/// scores[b, h, i, j] = <q_i, k_j> / sqrt(head_dim) within head h of sequence b.
pub fn attention_scores_forward<T: Real>(query: &[T], key: &[T], s: AttentionShape) -> Vec<T> {
    let scale = 1.0 / (s.head_dim as f64).sqrt();
    let mut out = vec![T::default(); s.batch * s.heads * s.seq * s.seq];
    out.par_chunks_mut(s.seq * s.seq)
        .enumerate()
        .for_each(|(bh, block)| {
            let (b, h) = (bh / s.heads, bh % s.heads);
            for i in 0..s.seq {
                let q = s.head(query, b * s.seq + i, h);
                for j in 0..s.seq {
                    let k = s.head(key, b * s.seq + j, h);
                    block[i * s.seq + j] = T::from_f64(dot_f64(q, k) * scale);
                }
            }
        });
    out
}

/// Softmax over each row of `seq` scores, padding keys (mask 0) excluded.
pub fn masked_softmax_forward<T: Real>(scores: &[T], mask: &[T], seq: usize) -> Vec<T> {
    let mut out = vec![T::default(); scores.len()];
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
                    .filter(|(_, &m)| m.to_f64() > 0.0)
                    .map(|(&v, _)| v.to_f64())
            };
            let max = kept().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = kept().map(|v| (v - max).exp()).sum();
            for ((o, &v), &m) in out_row.iter_mut().zip(row).zip(keep) {
                *o = if m.to_f64() > 0.0 {
                    T::from_f64((v.to_f64() - max).exp() / sum)
                } else {
                    T::default()
                };
            }
        });
    out
}

/// context[b * seq + i, head h] = sum_j probs[b, h, i, j] * value[b * seq + j, head h].
pub fn attention_context_forward<T: Real>(probs: &[T], value: &[T], s: AttentionShape) -> Vec<T> {
    let mut out = vec![T::default(); value.len()];
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
                            *a += p.to_f64() * vv.to_f64();
                        }
                    }
                    let start = i * s.width() + h * s.head_dim;
                    for (o, a) in sequence_out[start..start + s.head_dim].iter_mut().zip(acc) {
                        *o = T::from_f64(a);
                    }
                }
            }
        });
    out
}

/// Row 0 of every sequence of `seq` rows.
pub fn first_token_forward<T: Real>(x: &[T], seq: usize, width: usize) -> Vec<T> {
    x.chunks(seq * width)
        .flat_map(|sequence| &sequence[..width])
        .copied()
        .collect()
}

/// The mean of each sequence's rows whose mask is set.
pub fn mean_pool_forward<T: Real>(x: &[T], mask: &[T], seq: usize) -> Vec<T> {
    let width = x.len() / mask.len();
    let mut out = Vec::with_capacity(mask.len() / seq * width);
    for (sequence, keep) in x.chunks(seq * width).zip(mask.chunks(seq)) {
        let mut sum = vec![0.0f64; width];
        for (row, &m) in sequence.chunks(width).zip(keep) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += m.to_f64() * v.to_f64();
            }
        }
        let count = keep.iter().map(|&m| m.to_f64()).sum::<f64>().max(1e-9);
        out.extend(sum.iter().map(|&s| T::from_f64(s / count)));
    }
    out
}

/// Each row over its L2 norm, the norm clamped below at 1e-12 (as PyTorch's
/// `normalize` does).
pub fn l2_normalize_forward<T: Real>(x: &[T], width: usize) -> Vec<T> {
    x.chunks(width)
        .flat_map(|row| {
            let norm = row.iter().map(|&v| v.to_f64().powi(2)).sum::<f64>().sqrt();
            row.iter()
                .map(move |&v| T::from_f64(v.to_f64() / norm.max(1e-12)))
        })
        .collect()
}

/// Softmax over rows of `width`, in f64.
pub fn softmax_forward<T: Real>(x: &[T], width: usize) -> Vec<T> {
    x.chunks(width)
        .flat_map(|row| {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(v.to_f64()));
            let sum: f64 = row.iter().map(|&v| (v.to_f64() - max).exp()).sum();
            row.iter()
                .map(move |&v| T::from_f64((v.to_f64() - max).exp() / sum))
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
        let q: [f32; 8] = [10.0, 0.0, 0.0, 10.0, 10.0, 10.0, 0.0, 0.0];
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
