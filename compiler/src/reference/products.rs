//! The matrix products of the CPU reference, two ways. `Exact` is the
//! oracle's: every output one f64 sum, rounded once (`matmul_forward`,
//! `attention_scores_forward`, ... beside their ops). `Fast` computes the
//! same products in the element type with the `gemm` crate (blocked, SIMD,
//! on rayon's threads): the CPU path that runs models (`xltc run --cpu`,
//! `xltc train --cpu`, evaluation), checked against `Exact` below. Tests of
//! GPU kernels and gradients keep `Exact`.

use rayon::prelude::*;

use super::{AttentionShape, Real};

/// How the reference computes its matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Products {
    /// One f64 sum an output: the oracle.
    #[default]
    Exact,
    /// The `gemm` crate in the element type: f32 sums for f32 runs.
    Fast,
}

/// A matrix inside a slice: element (row, column) at
/// `data[offset + row * row_stride + column * column_stride]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    offset: usize,
    row_stride: usize,
    column_stride: usize,
}

impl<'a, T> View<'a, T> {
    /// A row-major [rows, columns] matrix starting at `offset`, rows
    /// `row_stride` apart.
    fn rows(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride,
            column_stride: 1,
        }
    }

    /// The transpose of [`View::rows`]: element (r, c) is element (c, r)
    /// of the row-major matrix.
    fn transposed(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride: 1,
            column_stride: row_stride,
        }
    }

    /// Panics unless a [rows, columns] matrix lies inside the slice: what
    /// makes the raw pointers handed to `gemm` sound.
    fn check(&self, rows: usize, columns: usize) {
        if rows > 0 && columns > 0 {
            let last =
                self.offset + (rows - 1) * self.row_stride + (columns - 1) * self.column_stride;
            assert!(last < self.data.len(), "matrix view past its slice");
        }
    }
}

/// dst [m, n] (rows `dst_row_stride` apart from `dst_offset`, zeros
/// before) = scale x lhs [m, k] x rhs [k, n], on `threads` (0: rayon's
/// count, 1: this one).
#[allow(clippy::too_many_arguments)]
fn product<T: Real>(
    (m, n, k): (usize, usize, usize),
    lhs: View<T>,
    rhs: View<T>,
    scale: f64,
    dst: &mut [T],
    (dst_offset, dst_row_stride): (usize, usize),
    threads: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    lhs.check(m, k);
    rhs.check(k, n);
    View::rows(&*dst, dst_offset, dst_row_stride).check(m, n);
    let parallelism = if threads == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    // SAFETY: the three views were checked to lie inside their slices, dst
    // is borrowed mutably and so overlaps neither operand, and T is f32 or
    // f64 (the only `Real`s), which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_offset),
            1,
            dst_row_stride as isize,
            false,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            T::default(),
            T::from_f64(scale),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// lhs [m, k] x rhs [k, n] as a new row-major [m, n] matrix, on all of
/// rayon's threads.
fn dense_product<T: Real>(
    (m, n, k): (usize, usize, usize),
    (lhs, rhs): (View<T>, View<T>),
) -> Vec<T> {
    let mut out = vec![T::default(); m * n];
    product((m, n, k), lhs, rhs, 1.0, &mut out, (0, n), 0);
    out
}

/// Where each head's [seq, seq] or [seq, head_dim] block of an attention
/// product lives.
#[derive(Clone, Copy)]
enum HeadLayout {
    /// [batch, heads, seq, seq]: scores and probabilities.
    Scores,
    /// [batch * seq, heads * head_dim]: queries, keys, values, context.
    Tokens,
}

impl HeadLayout {
    /// The head's block as a matrix, transposed when asked.
    fn view<T>(self, data: &[T], s: AttentionShape, b: usize, h: usize, t: bool) -> View<'_, T> {
        let (offset, stride) = self.place(s, b, h);
        if t {
            View::transposed(data, offset, stride)
        } else {
            View::rows(data, offset, stride)
        }
    }

    /// The head's first element and the distance between its rows.
    fn place(self, s: AttentionShape, b: usize, h: usize) -> (usize, usize) {
        let width = s.heads * s.head_dim;
        match self {
            HeadLayout::Scores => (((b * s.heads + h) * s.seq) * s.seq, s.seq),
            HeadLayout::Tokens => (b * s.seq * width + h * s.head_dim, width),
        }
    }
}

/// An operand of a product a head: its data, layout and whether it is
/// read transposed.
type HeadOperand<'a, T> = (&'a [T], HeadLayout, bool);

/// For every sequence b and head h: out_bh = scale x lhs_bh x rhs_bh, with
/// out in `layout` and `len` elements. Sequences run in parallel, heads one
/// after another.
fn per_head<T: Real>(
    s: AttentionShape,
    (m, n, k): (usize, usize, usize),
    (lhs, rhs): (HeadOperand<T>, HeadOperand<T>),
    scale: f64,
    (layout, len): (HeadLayout, usize),
) -> Vec<T> {
    let mut out = vec![T::default(); len];
    let sequence_len = len / s.batch.max(1);
    out.par_chunks_mut(sequence_len.max(1))
        .enumerate()
        .for_each(|(b, block)| {
            for h in 0..s.heads {
                let (offset, stride) = layout.place(s, b, h);
                product(
                    (m, n, k),
                    lhs.1.view(lhs.0, s, b, h, lhs.2),
                    rhs.1.view(rhs.0, s, b, h, rhs.2),
                    scale,
                    block,
                    (offset - b * sequence_len, stride),
                    1,
                );
            }
        });
    out
}

impl Products {
    /// x [m, k] times weight [n, k] transposed: [m, n].
    pub fn matmul<T: Real>(self, x: &[T], weight: &[T], k: usize) -> Vec<T> {
        if self == Products::Exact {
            return super::matmul_forward(x, weight, k);
        }
        let (m, n) = (x.len() / k.max(1), weight.len() / k.max(1));
        let operands = (View::rows(x, 0, k), View::transposed(weight, 0, k));
        dense_product((m, n, k), operands)
    }

    /// The input gradient of [`Products::matmul`]: dx = dy w [m, k].
    pub fn matmul_backward_x<T: Real>(self, dy: &[T], w: &[T], k: usize) -> Vec<T> {
        if self == Products::Exact {
            return super::matmul_backward_x(dy, w, k);
        }
        let n = w.len() / k.max(1);
        let m = dy.len() / n.max(1);
        dense_product((m, k, n), (View::rows(dy, 0, n), View::rows(w, 0, k)))
    }

    /// The weight gradient of [`Products::matmul`]: dw = dyᵀ x [n, k].
    pub fn matmul_backward_weight<T: Real>(self, dy: &[T], x: &[T], k: usize) -> Vec<T> {
        if self == Products::Exact {
            return super::matmul_backward_weight(dy, x, k);
        }
        let m = x.len() / k.max(1);
        let n = dy.len() / m.max(1);
        dense_product((n, k, m), (View::transposed(dy, 0, n), View::rows(x, 0, k)))
    }

    /// scores[b, h, i, j] = <q_i, k_j> / sqrt(head_dim).
    pub fn attention_scores<T: Real>(self, query: &[T], key: &[T], s: AttentionShape) -> Vec<T> {
        if self == Products::Exact {
            return super::attention_scores_forward(query, key, s);
        }
        let operands = (
            (query, HeadLayout::Tokens, false),
            (key, HeadLayout::Tokens, true),
        );
        let out = (HeadLayout::Scores, s.batch * s.heads * s.seq * s.seq);
        per_head(s, (s.seq, s.seq, s.head_dim), operands, scale(s), out)
    }

    /// context_i = sum_j probs_ij value_j within each head.
    pub fn attention_context<T: Real>(self, probs: &[T], value: &[T], s: AttentionShape) -> Vec<T> {
        if self == Products::Exact {
            return super::attention_context_forward(probs, value, s);
        }
        let operands = (
            (probs, HeadLayout::Scores, false),
            (value, HeadLayout::Tokens, false),
        );
        let out = (HeadLayout::Tokens, value.len());
        per_head(s, (s.seq, s.head_dim, s.seq), operands, 1.0, out)
    }

    /// The gradient of the scores with respect to the queries (`of_key`
    /// false: dq = scale ds k) or the keys (dk = scale dsᵀ q); `other` is
    /// the keys or the queries.
    pub fn attention_scores_backward<T: Real>(
        self,
        dscores: &[T],
        other: &[T],
        s: AttentionShape,
        of_key: bool,
    ) -> Vec<T> {
        if self == Products::Exact {
            let zeros = vec![T::default(); other.len()];
            return if of_key {
                super::attention_scores_backward(dscores, other, &zeros, s).1
            } else {
                super::attention_scores_backward(dscores, &zeros, other, s).0
            };
        }
        let operands = (
            (dscores, HeadLayout::Scores, of_key),
            (other, HeadLayout::Tokens, false),
        );
        let out = (HeadLayout::Tokens, other.len());
        per_head(s, (s.seq, s.head_dim, s.seq), operands, scale(s), out)
    }

    /// The context's gradient with respect to the probabilities:
    /// dp_ij = <dc_i, v_j>.
    pub fn attention_context_backward_probs<T: Real>(
        self,
        dcontext: &[T],
        value: &[T],
        s: AttentionShape,
    ) -> Vec<T> {
        let len = s.batch * s.heads * s.seq * s.seq;
        if self == Products::Exact {
            let probs = vec![T::default(); len];
            return super::attention_context_backward(dcontext, &probs, value, s).0;
        }
        let operands = (
            (dcontext, HeadLayout::Tokens, false),
            (value, HeadLayout::Tokens, true),
        );
        per_head(
            s,
            (s.seq, s.seq, s.head_dim),
            operands,
            1.0,
            (HeadLayout::Scores, len),
        )
    }

    /// The context's gradient with respect to the values:
    /// dv_j = sum_i p_ij dc_i.
    pub fn attention_context_backward_value<T: Real>(
        self,
        dcontext: &[T],
        probs: &[T],
        s: AttentionShape,
    ) -> Vec<T> {
        if self == Products::Exact {
            let value = vec![T::default(); dcontext.len()];
            return super::attention_context_backward(dcontext, probs, &value, s).1;
        }
        let operands = (
            (probs, HeadLayout::Scores, true),
            (dcontext, HeadLayout::Tokens, false),
        );
        let out = (HeadLayout::Tokens, dcontext.len());
        per_head(s, (s.seq, s.head_dim, s.seq), operands, 1.0, out)
    }
}

/// Attention's 1 / sqrt(head_dim).
fn scale(s: AttentionShape) -> f64 {
    1.0 / (s.head_dim as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn relative(fast: &[f32], exact: &[f32]) -> f64 {
        assert_eq!(fast.len(), exact.len());
        crate::reference::relative_error(fast, exact)
    }

    const TOLERANCE: f64 = 1e-5;

    #[test]
    fn fast_gemms_equal_the_exact_ones_on_odd_shapes() {
        for (m, n, k) in [(1, 1, 1), (7, 13, 5), (33, 17, 70), (130, 65, 31)] {
            let (x, w, dy) = (random(m * k, 1), random(n * k, 2), random(m * n, 3));
            let pairs = [
                (
                    Products::Fast.matmul(&x, &w, k),
                    Products::Exact.matmul(&x, &w, k),
                ),
                (
                    Products::Fast.matmul_backward_x(&dy, &w, k),
                    Products::Exact.matmul_backward_x(&dy, &w, k),
                ),
                (
                    Products::Fast.matmul_backward_weight(&dy, &x, k),
                    Products::Exact.matmul_backward_weight(&dy, &x, k),
                ),
            ];
            for (i, (fast, exact)) in pairs.iter().enumerate() {
                let error = relative(fast, exact);
                assert!(error < TOLERANCE, "{m}x{n}x{k} product {i}: {error:e}");
            }
        }
    }

    #[test]
    fn fast_attention_products_equal_the_exact_ones_on_odd_shapes() {
        for (batch, seq, heads, head_dim) in [(1, 1, 1, 1), (2, 7, 3, 5), (3, 19, 2, 12)] {
            let s = AttentionShape {
                batch,
                seq,
                heads,
                head_dim,
            };
            let tokens = batch * seq * heads * head_dim;
            let scores = batch * heads * seq * seq;
            let (q, k, v) = (random(tokens, 4), random(tokens, 5), random(tokens, 6));
            let (p, dc, ds) = (random(scores, 7), random(tokens, 8), random(scores, 9));
            let both = |f: &dyn Fn(Products) -> Vec<f32>| (f(Products::Fast), f(Products::Exact));
            let pairs = [
                both(&|x| x.attention_scores(&q, &k, s)),
                both(&|x| x.attention_context(&p, &v, s)),
                both(&|x| x.attention_scores_backward(&ds, &k, s, false)),
                both(&|x| x.attention_scores_backward(&ds, &q, s, true)),
                both(&|x| x.attention_context_backward_probs(&dc, &v, s)),
                both(&|x| x.attention_context_backward_value(&dc, &p, s)),
            ];
            for (i, (fast, exact)) in pairs.iter().enumerate() {
                let error = relative(fast, exact);
                assert!(error < TOLERANCE, "{s:?} product {i}: {error:e}");
            }
        }
    }

    #[test]
    fn fast_products_in_f64_are_f64_exact() {
        let (m, n, k) = (9, 11, 37);
        let x: Vec<f64> = random(m * k, 10).into_iter().map(f64::from).collect();
        let w: Vec<f64> = random(n * k, 11).into_iter().map(f64::from).collect();
        let (fast, exact) = (
            Products::Fast.matmul(&x, &w, k),
            Products::Exact.matmul(&x, &w, k),
        );
        for (a, b) in fast.iter().zip(&exact) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
