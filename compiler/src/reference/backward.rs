//! The gradient of every primitive op on the CPU, generic over f32 and f64:
//! `<op>_backward` beside `<op>_forward`, as llm.c pairs them. A backward
//! takes the gradient of the op's output (`dy`) and what its forward saved,
//! and gives the gradients of the op's inputs. In f64 each is checked
//! against central finite differences of its forward (tests below); these
//! are the oracles of the GPU backward kernels and of the autodiff pass.

use rayon::prelude::*;

use super::{AttentionShape, Real};
use crate::ir::AlignmentLoss;

fn to<T: Real>(values: Vec<f64>) -> Vec<T> {
    values.into_iter().map(T::from_f64).collect()
}

/// y = x [m, k] times w [n, k] transposed: dx = dy w [m, k]. Rows of dx
/// are spread over threads, each a fixed-order sum.
pub fn matmul_backward_x<T: Real>(dy: &[T], w: &[T], k: usize) -> Vec<T> {
    let n = w.len() / k;
    let mut dx = vec![T::default(); dy.len() / n * k];
    dx.par_chunks_mut(k)
        .zip(dy.par_chunks(n))
        .for_each(|(dx_row, dy_row)| {
            let mut acc = vec![0.0f64; k];
            for (j, g) in dy_row.iter().enumerate() {
                let g = g.to_f64();
                for (a, wv) in acc.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                    *a += g * wv.to_f64();
                }
            }
            for (d, a) in dx_row.iter_mut().zip(acc) {
                *d = T::from_f64(a);
            }
        });
    dx
}

/// The same product's weight gradient: dw = dyᵀ x [n, k], rows of dw spread
/// over threads, each summed over the m rows in order.
pub fn matmul_backward_weight<T: Real>(dy: &[T], x: &[T], k: usize) -> Vec<T> {
    let m = x.len() / k;
    let n = dy.len() / m;
    let mut dw = vec![T::default(); n * k];
    dw.par_chunks_mut(k).enumerate().for_each(|(j, dw_row)| {
        let mut acc = vec![0.0f64; k];
        for i in 0..m {
            let g = dy[i * n + j].to_f64();
            for (a, xv) in acc.iter_mut().zip(&x[i * k..(i + 1) * k]) {
                *a += g * xv.to_f64();
            }
        }
        for (d, a) in dw_row.iter_mut().zip(acc) {
            *d = T::from_f64(a);
        }
    });
    dw
}

/// The bias gradient: the column sums of dy [m, n].
pub fn add_bias_backward<T: Real>(dy: &[T], n: usize) -> Vec<T> {
    let mut db = vec![0.0; n];
    for row in dy.chunks_exact(n) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g.to_f64();
        }
    }
    to(db)
}

/// The exact GELU's derivative: Phi(x) + x phi(x).
pub fn gelu_backward<T: Real>(x: &[T], dy: &[T]) -> Vec<T> {
    let inv_sqrt_2pi = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    x.iter()
        .zip(dy)
        .map(|(&x, &g)| {
            let x = x.to_f64();
            let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = inv_sqrt_2pi * (-0.5 * x * x).exp();
            T::from_f64(g.to_f64() * (cdf + x * pdf))
        })
        .collect()
}

/// tanh's derivative from its output y: 1 - y².
pub fn tanh_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    y.iter()
        .zip(dy)
        .map(|(&y, &g)| T::from_f64(g.to_f64() * (1.0 - y.to_f64().powi(2))))
        .collect()
}

/// What LayerNorm's forward saves for its backward: each row's mean and
/// 1 / sqrt(biased variance + eps).
pub fn layer_norm_statistics<T: Real>(x: &[T], width: usize, eps: f32) -> (Vec<T>, Vec<T>) {
    let (mut mean, mut rstd) = (Vec::new(), Vec::new());
    for row in x.chunks_exact(width) {
        let m = row.iter().map(|v| v.to_f64()).sum::<f64>() / width as f64;
        let var = row.iter().map(|v| (v.to_f64() - m).powi(2)).sum::<f64>() / width as f64;
        mean.push(T::from_f64(m));
        rstd.push(T::from_f64(1.0 / (var + eps as f64).sqrt()));
    }
    (mean, rstd)
}

/// LayerNorm's gradients (dx, dgamma, dbeta) from dy, x and the saved
/// statistics: with x̂ = (x - mean) rstd and g = dy gamma,
/// dx = rstd (g - mean(g) - x̂ mean(g x̂)).
pub fn layer_norm_backward<T: Real>(
    dy: &[T],
    x: &[T],
    mean: &[T],
    rstd: &[T],
    gamma: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let width = gamma.len();
    let mut dx = vec![0.0; x.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; width], vec![0.0; width]);
    for (r, (row, g_row)) in x
        .chunks_exact(width)
        .zip(dy.chunks_exact(width))
        .enumerate()
    {
        let (m, s) = (mean[r].to_f64(), rstd[r].to_f64());
        let xhat: Vec<f64> = row.iter().map(|v| (v.to_f64() - m) * s).collect();
        let g: Vec<f64> = g_row
            .iter()
            .zip(gamma)
            .map(|(d, gm)| d.to_f64() * gm.to_f64())
            .collect();
        let g_mean = g.iter().sum::<f64>() / width as f64;
        let gx_mean = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / width as f64;
        for i in 0..width {
            dx[r * width + i] = s * (g[i] - g_mean - xhat[i] * gx_mean);
            dgamma[i] += g_row[i].to_f64() * xhat[i];
            dbeta[i] += g_row[i].to_f64();
        }
    }
    (to(dx), to(dgamma), to(dbeta))
}

/// The masked softmax's gradient from its saved output p: in each row,
/// ds = p (dp - <p, dp>); padding keys (p = 0) get none.
pub fn masked_softmax_backward<T: Real>(probs: &[T], dprobs: &[T], seq: usize) -> Vec<T> {
    let mut ds = Vec::with_capacity(probs.len());
    for (p, dp) in probs.chunks_exact(seq).zip(dprobs.chunks_exact(seq)) {
        let dot: f64 = p.iter().zip(dp).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
        ds.extend(
            p.iter()
                .zip(dp)
                .map(|(a, b)| T::from_f64(a.to_f64() * (b.to_f64() - dot))),
        );
    }
    ds
}

/// Scores s[b, h, i, j] = <q_i, k_j> / sqrt(head_dim): dq_i = scale Σ_j ds_ij k_j,
/// dk_j = scale Σ_i ds_ij q_i.
pub fn attention_scores_backward<T: Real>(
    dscores: &[T],
    query: &[T],
    key: &[T],
    s: AttentionShape,
) -> (Vec<T>, Vec<T>) {
    let scale = 1.0 / (s.head_dim as f64).sqrt();
    let width = s.heads * s.head_dim;
    let (mut dq, mut dk) = (vec![0.0; query.len()], vec![0.0; key.len()]);
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.seq {
                for j in 0..s.seq {
                    let g = dscores[((b * s.heads + h) * s.seq + i) * s.seq + j].to_f64() * scale;
                    let (qi, kj) = (
                        (b * s.seq + i) * width + h * s.head_dim,
                        (b * s.seq + j) * width + h * s.head_dim,
                    );
                    for d in 0..s.head_dim {
                        dq[qi + d] += g * key[kj + d].to_f64();
                        dk[kj + d] += g * query[qi + d].to_f64();
                    }
                }
            }
        }
    }
    (to(dq), to(dk))
}

/// Context c_i = Σ_j p_ij v_j within a head: dp_ij = <dc_i, v_j> and
/// dv_j = Σ_i p_ij dc_i.
pub fn attention_context_backward<T: Real>(
    dcontext: &[T],
    probs: &[T],
    value: &[T],
    s: AttentionShape,
) -> (Vec<T>, Vec<T>) {
    let width = s.heads * s.head_dim;
    let (mut dp, mut dv) = (vec![0.0; probs.len()], vec![0.0; value.len()]);
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.seq {
                let ci = (b * s.seq + i) * width + h * s.head_dim;
                for j in 0..s.seq {
                    let vj = (b * s.seq + j) * width + h * s.head_dim;
                    let p_index = ((b * s.heads + h) * s.seq + i) * s.seq + j;
                    let p = probs[p_index].to_f64();
                    let mut dot = 0.0;
                    for d in 0..s.head_dim {
                        dot += dcontext[ci + d].to_f64() * value[vj + d].to_f64();
                        dv[vj + d] += p * dcontext[ci + d].to_f64();
                    }
                    dp[p_index] = dot;
                }
            }
        }
    }
    (to(dp), to(dv))
}

/// The gradient of a gather: for each distinct id, in increasing order, the
/// sum of the rows of dy [ids, width] that picked it, summed in token order
/// (a fixed order: deterministic, no atomics). Only these rows of the table
/// have a gradient.
pub fn gather_backward<T: Real>(dy: &[T], ids: &[u32], width: usize) -> (Vec<u32>, Vec<T>) {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&t| (ids[t], t));
    let (mut rows, mut sums): (Vec<u32>, Vec<f64>) = (Vec::new(), Vec::new());
    for t in order {
        if rows.last() != Some(&ids[t]) {
            rows.push(ids[t]);
            sums.extend(std::iter::repeat_n(0.0, width));
        }
        let sum = sums.len() - width;
        for (s, g) in sums[sum..].iter_mut().zip(&dy[t * width..(t + 1) * width]) {
            *s += g.to_f64();
        }
    }
    (rows, to(sums))
}

/// The first token's gradient goes to row 0 of each sequence; other rows get none.
pub fn first_token_backward<T: Real>(dy: &[T], seq: usize, width: usize) -> Vec<T> {
    let mut dx = vec![T::default(); dy.len() * seq];
    for (b, row) in dy.chunks_exact(width).enumerate() {
        dx[b * seq * width..b * seq * width + width].copy_from_slice(row);
    }
    dx
}

/// The mean pool's gradient: dy / count to each real token of the sequence.
pub fn mean_pool_backward<T: Real>(dy: &[T], mask: &[T], seq: usize) -> Vec<T> {
    let width = dy.len() / (mask.len() / seq);
    let mut dx = Vec::with_capacity(mask.len() * width);
    for (row, keep) in dy.chunks_exact(width).zip(mask.chunks_exact(seq)) {
        let count = keep.iter().map(|m| m.to_f64()).sum::<f64>().max(1e-9);
        for m in keep {
            let scale = m.to_f64() / count;
            dx.extend(row.iter().map(|g| T::from_f64(g.to_f64() * scale)));
        }
    }
    dx
}

/// Inverted dropout: element i kept when its Philox draw (seed and stream
/// from `key` = [seed low, seed high, step, micro-batch], and `site`) is at
/// least `p`, then scaled by 1 / (1 - p). The backward is the same function
/// applied to dy: the mask is regenerated, never stored.
pub fn dropout_forward<T: Real>(x: &[T], key: &[u32], site: u32, p: f32) -> Vec<T> {
    let seed = key[0] as u64 | (key[1] as u64) << 32;
    let stream = (key[2] as u64) << 32 | (key[3] as u64) << 16 | site as u64;
    let scale = 1.0 / (1.0 - p as f64);
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let keep = xltc_runtime::philox_uniform(seed, stream, i as u64) >= p as f64;
            T::from_f64(if keep { v.to_f64() * scale } else { 0.0 })
        })
        .collect()
}

/// Softmax cross-entropy of `logits` [batch, labels] against `labels`,
/// averaged over the real examples (`example_mask` not 0; batch padding 0),
/// each weighted by its mask (1 as transformers' sequence classifiers
/// compute it; another weight scales the example's term, as a loss mixing
/// clean and perturbed passes needs); and its gradient
/// d loss / d logits = mask (softmax - one-hot) / real examples.
pub fn softmax_cross_entropy<T: Real>(
    logits: &[T],
    labels: &[u32],
    example_mask: &[T],
) -> (T, Vec<T>) {
    let classes = logits.len() / labels.len();
    let real = example_mask
        .iter()
        .filter(|m| m.to_f64() != 0.0)
        .count()
        .max(1) as f64;
    let mut loss = 0.0;
    let mut dlogits = Vec::with_capacity(logits.len());
    for ((row, &label), m) in logits.chunks_exact(classes).zip(labels).zip(example_mask) {
        let m = m.to_f64();
        let max = row.iter().fold(f64::NEG_INFINITY, |a, v| a.max(v.to_f64()));
        let sum: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
        let log_sum = max + sum.ln();
        loss += m * (log_sum - row[label as usize].to_f64());
        for (c, v) in row.iter().enumerate() {
            let p = (v.to_f64() - log_sum).exp();
            let target = f64::from(u8::from(c == label as usize));
            dlogits.push(T::from_f64(m * (p - target) / real));
        }
    }
    (T::from_f64(loss / real), dlogits)
}

/// [`AlignmentLoss`] of `x` [2n, width] (n rows, then their translations)
/// under `example_mask` [2n], and its gradient with respect to x.
pub fn alignment<T: Real>(
    x: &[T],
    width: usize,
    example_mask: &[T],
    loss: AlignmentLoss,
) -> (T, Vec<T>) {
    match loss {
        AlignmentLoss::Cosine => cosine_alignment(x, width, example_mask),
        AlignmentLoss::Contrastive { temperature } => {
            contrastive_alignment(x, width, example_mask, temperature)
        }
        AlignmentLoss::SymmetricKl => symmetric_kl_alignment(x, width, example_mask),
    }
}

/// How far apart the head's distributions are: `x` [2n, labels] holds the
/// logits of n pairs, then of their translated versions; with p and q the
/// softmax of a pair's two rows, the loss is the mean over the pairs whose
/// `example_mask` entry is not 0 of mask (KL(p || q) + KL(q || p)) =
/// mask sum_k (p_k - q_k)(log p_k - log q_k). Its gradient with respect to
/// the first row's logits is mask / R times
/// p_k (log p_k - log q_k) + p_k - q_k - p_k KL(p || q), and the same with p
/// and q swapped for the second (R: the number of real pairs).
fn symmetric_kl_alignment<T: Real>(x: &[T], width: usize, example_mask: &[T]) -> (T, Vec<T>) {
    let n = x.len() / width.max(1) / 2;
    let real = example_mask[..n]
        .iter()
        .filter(|m| m.to_f64() != 0.0)
        .count()
        .max(1) as f64;
    let log_softmax = |row: usize| -> Vec<f64> {
        let z: Vec<f64> = x[row * width..(row + 1) * width]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let top = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        let lse = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        z.iter().map(|v| v - lse).collect()
    };
    let mut loss = 0.0;
    let mut dx = vec![T::from_f64(0.0); x.len()];
    for (i, m) in example_mask[..n].iter().enumerate() {
        let m = m.to_f64();
        let (lp, lq) = (log_softmax(i), log_softmax(n + i));
        let (p, q): (Vec<f64>, Vec<f64>) =
            lp.iter().zip(&lq).map(|(a, b)| (a.exp(), b.exp())).unzip();
        let kl = |a: &[f64], la: &[f64], lb: &[f64]| -> f64 {
            (0..width).map(|k| a[k] * (la[k] - lb[k])).sum()
        };
        let (pq, qp) = (kl(&p, &lp, &lq), kl(&q, &lq, &lp));
        loss += m * (pq + qp);
        let scale = m / real;
        for k in 0..width {
            let first = p[k] * (lp[k] - lq[k]) + p[k] - q[k] - p[k] * pq;
            let second = q[k] * (lq[k] - lp[k]) + q[k] - p[k] - q[k] * qp;
            dx[i * width + k] = T::from_f64(scale * first);
            dx[(n + i) * width + k] = T::from_f64(scale * second);
        }
    }
    (T::from_f64(loss / real), dx)
}

/// How far apart sentences and their translations are: `x` [2n, width]
/// holds n rows, then their translations; the mean over the pairs whose
/// `example_mask` entry (the first row's) is not 0 of mask (1 - cos), and
/// its gradient with respect to x: for a pair (a, b), d cos / d a =
/// b / (|a| |b|) - cos a / |a|^2, and the same with a and b swapped. A zero
/// row counts as norm 1e-12 (its cosine is 0).
fn cosine_alignment<T: Real>(x: &[T], width: usize, example_mask: &[T]) -> (T, Vec<T>) {
    let rows = x.len() / width.max(1);
    let n = rows / 2;
    let real = example_mask[..n]
        .iter()
        .filter(|m| m.to_f64() != 0.0)
        .count()
        .max(1) as f64;
    let row = |i: usize| x[i * width..(i + 1) * width].iter().map(|v| v.to_f64());
    let mut loss = 0.0;
    let mut dx = vec![T::from_f64(0.0); x.len()];
    for (i, m) in example_mask[..n].iter().enumerate() {
        let m = m.to_f64();
        let (a, b) = (i, n + i);
        let dot: f64 = row(a).zip(row(b)).map(|(p, q)| p * q).sum();
        let na = row(a).map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let nb = row(b).map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let cos = dot / (na * nb);
        loss += m * (1.0 - cos);
        let scale = -m / real;
        for k in 0..width {
            let (p, q) = (x[a * width + k].to_f64(), x[b * width + k].to_f64());
            dx[a * width + k] = T::from_f64(scale * (q / (na * nb) - cos * p / (na * na)));
            dx[b * width + k] = T::from_f64(scale * (p / (na * nb) - cos * q / (nb * nb)));
        }
    }
    (T::from_f64(loss / real), dx)
}

/// Symmetric InfoNCE over the real pairs (mask entry not 0) of `x` [2n,
/// width]: with u_i, v_j the unit rows of sentence i and translation j and
/// s_ij = u_i . v_j / temperature, the loss is
/// sum_i m_i ((lse_j s_ij - s_ii) + (lse_j s_ji - s_ii)) / (2 R), R the
/// number of real pairs, j over real pairs only. Its gradient: d/ds_ij =
/// (m_i (P_ij - [i = j]) + m_j (Q_ij - [i = j])) / (2 R), P the softmax of a
/// row of s and Q of a column; then d/du_i = sum_j d/ds_ij v_j / temperature
/// (and for v_j the same over i), and d/da = (g - (g . u) u) / |a| through
/// the normalisation. A zero row counts as norm 1e-12; a pair whose mask is
/// 0 gets a zero gradient.
fn contrastive_alignment<T: Real>(
    x: &[T],
    width: usize,
    example_mask: &[T],
    temperature: f64,
) -> (T, Vec<T>) {
    let n = x.len() / width.max(1) / 2;
    let mask: Vec<f64> = example_mask[..n].iter().map(|m| m.to_f64()).collect();
    let real: Vec<usize> = (0..n).filter(|&i| mask[i] != 0.0).collect();
    let count = real.len().max(1) as f64;
    let unit = |row: usize| -> (Vec<f64>, f64) {
        let v: Vec<f64> = x[row * width..(row + 1) * width]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let norm = v.iter().map(|p| p * p).sum::<f64>().sqrt().max(1e-12);
        (v.iter().map(|p| p / norm).collect(), norm)
    };
    let (u, v): (Vec<_>, Vec<_>) = (0..n).map(|i| (unit(i), unit(n + i))).unzip();
    // s over the real pairs only: s[a][b] for real[a], real[b].
    let s: Vec<Vec<f64>> = real
        .iter()
        .map(|&i| {
            real.iter()
                .map(|&j| u[i].0.iter().zip(&v[j].0).map(|(p, q)| p * q).sum::<f64>() / temperature)
                .collect()
        })
        .collect();
    let softmax = |scores: Vec<f64>| -> (f64, Vec<f64>) {
        let top = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = scores.iter().map(|v| (v - top).exp()).sum();
        let lse = top + sum.ln();
        let p = scores.iter().map(|v| (v - lse).exp()).collect();
        (lse, p)
    };
    let r = real.len();
    let rows: Vec<(f64, Vec<f64>)> = (0..r).map(|a| softmax(s[a].clone())).collect();
    let columns: Vec<(f64, Vec<f64>)> = (0..r)
        .map(|b| softmax((0..r).map(|a| s[a][b]).collect()))
        .collect();
    let mut loss = 0.0;
    for a in 0..r {
        loss += mask[real[a]] * ((rows[a].0 - s[a][a]) + (columns[a].0 - s[a][a]));
    }
    // d loss / d s, then back to the rows of x.
    let mut du = vec![vec![0.0; width]; n];
    let mut dv = vec![vec![0.0; width]; n];
    for a in 0..r {
        for b in 0..r {
            let same = if a == b { 1.0 } else { 0.0 };
            let ds = (mask[real[a]] * (rows[a].1[b] - same)
                + mask[real[b]] * (columns[b].1[a] - same))
                / (2.0 * count * temperature);
            let (i, j) = (real[a], real[b]);
            for k in 0..width {
                du[i][k] += ds * v[j].0[k];
                dv[j][k] += ds * u[i].0[k];
            }
        }
    }
    let mut dx = vec![T::from_f64(0.0); x.len()];
    for (row, ((unit, norm), g)) in u.iter().zip(&du).chain(v.iter().zip(&dv)).enumerate() {
        let along: f64 = g.iter().zip(unit).map(|(p, q)| p * q).sum();
        for k in 0..width {
            dx[row * width + k] = T::from_f64((g[k] - along * unit[k]) / norm);
        }
    }
    (T::from_f64(loss / (2.0 * count)), dx)
}

#[cfg(test)]
mod tests {
    use super::super::{
        add_bias_forward, attention_context_forward, attention_scores_forward, first_token_forward,
        gather_forward, gelu_forward, layer_norm_forward, masked_softmax_forward, matmul_forward,
        mean_pool_forward, tanh_forward,
    };
    use super::*;
    use xltc_runtime::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| rng.next_f64() * 2.0 - 1.0).collect()
    }

    /// The gradient of Σ forward(x) ⊙ r with respect to x by central
    /// differences, against `analytic`: relative error below 1e-7 of the
    /// largest gradient.
    fn check(
        name: &str,
        x: &[f64],
        r: &[f64],
        forward: impl Fn(&[f64]) -> Vec<f64>,
        analytic: &[f64],
    ) {
        let h = 1e-5;
        let objective = |x: &[f64]| -> f64 { forward(x).iter().zip(r).map(|(a, b)| a * b).sum() };
        let scale = analytic.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += h;
            down[i] -= h;
            let numeric = (objective(&up) - objective(&down)) / (2.0 * h);
            worst = worst.max((numeric - analytic[i]).abs() / scale);
        }
        assert!(worst < 1e-7, "{name}: relative error {worst:e}");
        assert!(
            analytic.iter().any(|v| v.abs() > 1e-3),
            "{name}: a gradient of zeros tests nothing"
        );
    }

    #[test]
    fn matmul_and_bias_gradients_match_finite_differences() {
        let (m, k, n) = (5, 7, 3);
        let (x, w, b) = (random(m * k, 1), random(n * k, 2), random(n, 3));
        let r = random(m * n, 4);
        let (dx, dw) = (
            matmul_backward_x(&r, &w, k),
            matmul_backward_weight(&r, &x, k),
        );
        check("matmul dx", &x, &r, |x| matmul_forward(x, &w, k), &dx);
        check("matmul dw", &w, &r, |w| matmul_forward(&x, w, k), &dw);
        let y = matmul_forward(&x, &w, k);
        check(
            "bias",
            &b,
            &r,
            |b| add_bias_forward(&y, b),
            &add_bias_backward(&r, n),
        );
    }

    #[test]
    fn elementwise_gradients_match_finite_differences() {
        let x: Vec<f64> = random(11, 5).iter().map(|v| 3.0 * v).collect();
        let r = random(11, 6);
        check("gelu", &x, &r, gelu_forward, &gelu_backward(&x, &r));
        let y = tanh_forward(&x);
        check("tanh", &x, &r, tanh_forward, &tanh_backward(&y, &r));
    }

    #[test]
    fn layer_norm_gradients_match_finite_differences() {
        let (rows, width, eps) = (3, 13, 1e-5);
        let (x, gamma, beta) = (random(rows * width, 7), random(width, 8), random(width, 9));
        let r = random(rows * width, 10);
        let (mean, rstd) = layer_norm_statistics(&x, width, eps);
        let (dx, dgamma, dbeta) = layer_norm_backward(&r, &x, &mean, &rstd, &gamma);
        check(
            "layer norm dx",
            &x,
            &r,
            |x| layer_norm_forward(x, &gamma, &beta, eps),
            &dx,
        );
        check(
            "layer norm dgamma",
            &gamma,
            &r,
            |g| layer_norm_forward(&x, g, &beta, eps),
            &dgamma,
        );
        check(
            "layer norm dbeta",
            &beta,
            &r,
            |b| layer_norm_forward(&x, &gamma, b, eps),
            &dbeta,
        );
    }

    #[test]
    fn attention_gradients_match_finite_differences() {
        // 2 sequences of 5 tokens, 3 heads of 4; the second sequence has 2 padding tokens.
        let s = AttentionShape::new(2, 5, 3, 12);
        let mask: Vec<f64> = (0..10).map(|t| f64::from(u8::from(t < 8))).collect();
        let (q, k, v) = (
            random(10 * 12, 11),
            random(10 * 12, 12),
            random(10 * 12, 13),
        );
        let scores = attention_scores_forward(&q, &k, s);
        let r_scores = random(scores.len(), 14);
        let (dq, dk) = attention_scores_backward(&r_scores, &q, &k, s);
        check(
            "scores dq",
            &q,
            &r_scores,
            |q| attention_scores_forward(q, &k, s),
            &dq,
        );
        check(
            "scores dk",
            &k,
            &r_scores,
            |k| attention_scores_forward(&q, k, s),
            &dk,
        );
        let probs = masked_softmax_forward(&scores, &mask, 5);
        let ds = masked_softmax_backward(&probs, &r_scores, 5);
        check(
            "masked softmax",
            &scores,
            &r_scores,
            |x| masked_softmax_forward(x, &mask, 5),
            &ds,
        );
        let r_context = random(10 * 12, 15);
        let (dp, dv) = attention_context_backward(&r_context, &probs, &v, s);
        check(
            "context dprobs",
            &probs,
            &r_context,
            |p| attention_context_forward(p, &v, s),
            &dp,
        );
        check(
            "context dv",
            &v,
            &r_context,
            |v| attention_context_forward(&probs, v, s),
            &dv,
        );
    }

    #[test]
    fn pooling_and_gather_gradients_match_finite_differences() {
        let (seq, width) = (4, 3);
        let x = random(2 * seq * width, 16);
        let r = random(2 * width, 17);
        let first = first_token_backward(&r, seq, width);
        check(
            "first token",
            &x,
            &r,
            |x| first_token_forward(x, seq, width),
            &first,
        );
        let mask = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let pooled = mean_pool_backward(&r, &mask, seq);
        check(
            "mean pool",
            &x,
            &r,
            |x| mean_pool_forward(x, &mask, seq),
            &pooled,
        );
        // Ids repeat and skip rows: only touched rows, summed, in id order.
        let table = random(6 * width, 18);
        let ids = [4u32, 1, 4, 0, 4];
        let r = random(ids.len() * width, 19);
        let (rows, sums) = gather_backward(&r, &ids, width);
        assert_eq!(rows, [0, 1, 4]);
        let mut dense = vec![0.0; table.len()];
        for (row, sum) in rows.iter().zip(sums.chunks_exact(width)) {
            dense[*row as usize * width..][..width].copy_from_slice(sum);
        }
        check(
            "gather",
            &table,
            &r,
            |t| gather_forward(t, width, &ids, "t").unwrap(),
            &dense,
        );
    }

    #[test]
    fn dropout_keeps_one_minus_p_scaled_and_its_gradient_is_the_same_mask() {
        let x = vec![1.0f64; 20_000];
        let key = [7, 0, 3, 1];
        let y = dropout_forward(&x, &key, 5, 0.1);
        let kept = y.iter().filter(|&&v| v != 0.0).count();
        // 18,000 expected, standard deviation about 42.
        assert!((17_850..18_150).contains(&kept), "{kept}");
        let scale = 1.0 / (1.0 - 0.1f32 as f64);
        assert!(y.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-12));
        assert_ne!(
            y,
            dropout_forward(&x, &[7, 0, 4, 1], 5, 0.1),
            "another step, another mask"
        );
        assert_ne!(
            y,
            dropout_forward(&x, &key, 6, 0.1),
            "another site, another mask"
        );
        let r = random(50, 24);
        let x = random(50, 25);
        let dx = dropout_forward(&r, &key, 5, 0.3);
        check("dropout", &x, &r, |x| dropout_forward(x, &key, 5, 0.3), &dx);
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences_and_skips_padding() {
        let logits: Vec<f64> = random(4 * 3, 20).iter().map(|v| 4.0 * v).collect();
        let labels = [2u32, 0, 1, 1];
        let mask = [1.0, 1.0, 1.0, 0.0];
        let (loss, dlogits) = softmax_cross_entropy(&logits, &labels, &mask);
        // By hand for the first example: -log softmax(row)[2], averaged over 3.
        let by_hand: f64 = (0..3)
            .map(|b| {
                let row = &logits[b * 3..b * 3 + 3];
                let sum: f64 = row.iter().map(|v| v.exp()).sum();
                -(row[labels[b] as usize].exp() / sum).ln()
            })
            .sum::<f64>()
            / 3.0;
        assert!((loss - by_hand).abs() < 1e-12);
        assert!(
            dlogits[9..].iter().all(|g| *g == 0.0),
            "padding rows get no gradient"
        );
        let loss_of = |l: &[f64]| vec![softmax_cross_entropy(l, &labels, &mask).0];
        check("cross-entropy", &logits, &[1.0], loss_of, &dlogits);
    }

    /// In f32 the backward gives the f64 result rounded: the same function.
    #[test]
    fn f32_and_f64_agree() {
        let (m, k, n) = (3, 4, 2);
        let (x, w, r) = (random(m * k, 21), random(n * k, 22), random(m * n, 23));
        let as32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let pairs = [
            (
                matmul_backward_x(&as32(&r), &as32(&w), k),
                matmul_backward_x(&r, &w, k),
            ),
            (
                matmul_backward_weight(&as32(&r), &as32(&x), k),
                matmul_backward_weight(&r, &x, k),
            ),
        ];
        for (ours32, ours64) in pairs {
            for (a, b) in ours32.iter().zip(&ours64) {
                assert!((*a as f64 - b).abs() < 1e-6);
            }
        }
    }

    /// The contrastive loss's value where it is known: unit rows, each
    /// sentence equal to its translation and orthogonal to the others,
    /// give s_ii = 1 / t and s_ij = 0, so each direction of each pair
    /// costs ln(e^(1/t) + R - 1) - 1 / t; a masked pair is no candidate
    /// (R counts real pairs only), and scaling a row changes nothing.
    #[test]
    fn the_contrastive_loss_of_orthogonal_pairs() {
        let (n, width, t) = (4, 5, 0.5);
        let mut x = vec![0.0f64; 2 * n * width];
        for i in 0..n {
            x[i * width + i] = 1.0 + i as f64;
            x[(n + i) * width + i] = 2.0;
        }
        let mask = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let loss = AlignmentLoss::Contrastive { temperature: t };
        let (value, dx) = alignment(&x, width, &mask, loss);
        let expected = ((1.0 / t).exp() + 2.0).ln() - 1.0 / t;
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        assert!(dx[2 * width..3 * width].iter().all(|&v| v == 0.0));
        assert!(dx[(n + 2) * width..(n + 3) * width]
            .iter()
            .all(|&v| v == 0.0));
        // Sentence 0 is its translation's direction already (no gradient
        // along it) and is pushed away from the other real translations
        // (a positive gradient along theirs), not from the masked one's.
        let row = &dx[..width];
        assert!(row[0].abs() < 1e-12 && row[2] == 0.0, "{row:?}");
        assert!(row[1] > 0.0 && row[3] > 0.0, "{row:?}");
        let cosine = alignment(&x, width, &mask, AlignmentLoss::Cosine).0;
        assert!(cosine.abs() < 1e-12);
    }

    /// The symmetric KL of the head's distributions where it is known: two
    /// labels with p = (1/4, 3/4) and q = (3/4, 1/4) cost
    /// (p - q) . (log p - log q) = ln 3; a pair whose rows agree costs
    /// nothing and gets no gradient; a masked pair neither counts nor gets
    /// a gradient. Then the gradient against central differences, with
    /// three labels and pairs weighted unevenly.
    #[test]
    fn the_symmetric_kl_by_hand_and_by_differences() {
        let loss = AlignmentLoss::SymmetricKl;
        // Pairs: (p, q), (equal rows), (masked). Rows: 3 pairs, then theirs.
        let x = [
            0.0,
            3f64.ln(),
            0.7,
            -0.2,
            5.0,
            1.0,
            3f64.ln(),
            0.0,
            0.7,
            -0.2,
            -4.0,
            2.0,
        ];
        let mask = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let (value, dx) = alignment(&x, 2, &mask, loss);
        let expected = 3f64.ln() / 2.0;
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        for pair in [1, 2, 4, 5] {
            assert!(
                dx[2 * pair..2 * pair + 2].iter().all(|v| v.abs() < 1e-15),
                "{dx:?}"
            );
        }
        // p puts more than q on label 1: the first row's gradient is positive
        // there and negative on label 0, so a descent step moves p toward q.
        assert!(dx[1] > 0.0 && dx[0] < 0.0, "{dx:?}");

        let (n, labels) = (4, 3);
        let x: Vec<f64> = random(2 * n * labels, 31).iter().map(|v| 3.0 * v).collect();
        let mask = [1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0];
        let dx = alignment(&x, labels, &mask, loss).1;
        let loss_of = |x: &[f64]| vec![alignment(x, labels, &mask, loss).0];
        check("symmetric KL", &x, &[1.0], loss_of, &dx);
    }
}
