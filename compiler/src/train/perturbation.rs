//! Perturbations of the word embeddings, computed on the host between GPU
//! programs: RS-RP's noise, and projected gradient ascent's start, step and
//! projection. A perturbation is [tokens, width] like the graph's
//! `word_embedding_delta` input; a token that is padding (attention mask 0,
//! or a row that only pads the batch) is never perturbed. Random draws are
//! Philox4x32-10 keyed by the run's seed, at a counter made of the element
//! and a stream that names the optimizer step, the micro-batch and the use:
//! the same numbers on every machine, CPU reference or GPU.

use xltc_runtime::random::philox4x32_10;

use super::method::{Law, Norm};

/// Which tokens of a padded batch are real: `attention_mask` [tokens] is
/// 1, and the row's `example_mask` [batch] entry is not 0.
pub fn real_tokens(attention_mask: &[f32], example_mask: &[f32]) -> Vec<bool> {
    let seq = attention_mask.len() / example_mask.len().max(1);
    attention_mask
        .iter()
        .enumerate()
        .map(|(t, &m)| m > 0.0 && example_mask[t / seq.max(1)] > 0.0)
        .collect()
}

/// What a draw is for: part of its Philox stream.
#[derive(Clone, Copy, Debug)]
pub enum Use {
    /// RS-RP's noise.
    Noise = 1,
    /// PGD's random start.
    Start = 2,
    /// The random start of the ascent on the alignment term's English side.
    AlignmentStart = 3,
}

/// The Philox stream of `purpose` at optimizer step `step`, micro-batch `micro`.
pub fn stream(step: usize, micro: usize, purpose: Use) -> u64 {
    ((step as u64) << 32) | ((micro as u64 & 0xFF_FFFF) << 8) | purpose as u64
}

/// Two uniform draws in (0, 1] for element `index` of `stream`.
fn uniforms(seed: u64, stream: u64, index: u64) -> (f64, f64) {
    let counter = [
        index as u32,
        (index >> 32) as u32,
        stream as u32,
        (stream >> 32) as u32,
    ];
    let words = philox4x32_10(counter, [seed as u32, (seed >> 32) as u32]);
    let unit = |w: u32| (w as f64 + 1.0) / 4_294_967_296.0;
    (unit(words[0]), unit(words[1]))
}

/// Random values of `law` and scale `sigma` for every element of the real
/// tokens (zero elsewhere) of sequences padded to `seq`: normal with
/// standard deviation sigma (Box-Muller), or uniform in [-sigma, sigma].
/// An element's draw depends on its row, its position in the row and its
/// column, not on the padding: batches padded to other lengths (the CPU
/// reference's and the GPU's) draw the same numbers for the same tokens.
pub fn noise(
    law: Law,
    sigma: f64,
    seed: u64,
    stream: u64,
    real: &[bool],
    seq: usize,
    width: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; real.len() * width];
    for (t, row) in out.chunks_exact_mut(width).enumerate() {
        if !real[t] {
            continue;
        }
        let token = (((t / seq) as u64) << 24) | (t % seq) as u64;
        for (i, v) in row.iter_mut().enumerate() {
            let (a, b) = uniforms(seed, stream, token * width as u64 + i as u64);
            let draw = match law {
                Law::Gaussian => (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos(),
                Law::Uniform => 2.0 * a - 1.0,
            };
            *v = (draw * sigma) as f32;
        }
    }
    out
}

/// The groups of elements a norm measures together: each real token, or
/// each sequence's real tokens ([`Norm::Linf`] measures elements, and is
/// handled element by element).
fn groups(norm: Norm, real: &[bool], seq: usize) -> Vec<Vec<usize>> {
    let tokens = (0..real.len()).filter(|&t| real[t]);
    match norm {
        Norm::L2Token | Norm::Linf => tokens.map(|t| vec![t]).collect(),
        Norm::L2Seq => {
            let mut by_row: Vec<Vec<usize>> = vec![Vec::new(); real.len().div_ceil(seq.max(1))];
            for t in tokens {
                by_row[t / seq].push(t);
            }
            by_row.retain(|g| !g.is_empty());
            by_row
        }
    }
}

fn l2(x: &[f32], group: &[usize], width: usize) -> f64 {
    group
        .iter()
        .flat_map(|&t| &x[t * width..(t + 1) * width])
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt()
}

/// Moves `delta` back into the eps-ball of `norm`, and zeroes padding.
pub fn project(delta: &mut [f32], norm: Norm, eps: f64, real: &[bool], seq: usize) {
    let width = delta.len() / real.len().max(1);
    for (t, row) in delta.chunks_exact_mut(width).enumerate() {
        if !real[t] {
            row.fill(0.0);
        }
    }
    if norm == Norm::Linf {
        let eps = eps as f32;
        delta.iter_mut().for_each(|v| *v = v.clamp(-eps, eps));
        return;
    }
    for group in groups(norm, real, seq) {
        let length = l2(delta, &group, width);
        if length > eps {
            let scale = (eps / length) as f32;
            for &t in &group {
                delta[t * width..(t + 1) * width]
                    .iter_mut()
                    .for_each(|v| *v *= scale);
            }
        }
    }
}

/// One ascent step of size `alpha` along `gradient` in `norm`'s geometry
/// (the normalised gradient for L2, its sign for L-infinity), then the
/// projection into the eps-ball.
#[allow(clippy::too_many_arguments)]
pub fn ascend(
    delta: &mut [f32],
    gradient: &[f32],
    norm: Norm,
    alpha: f64,
    eps: f64,
    real: &[bool],
    seq: usize,
) {
    let width = delta.len() / real.len().max(1);
    match norm {
        Norm::Linf => {
            for (t, (d, g)) in delta
                .chunks_exact_mut(width)
                .zip(gradient.chunks_exact(width))
                .enumerate()
            {
                if real[t] {
                    for (d, &g) in d.iter_mut().zip(g) {
                        *d += (alpha * (g > 0.0) as i32 as f64 - alpha * (g < 0.0) as i32 as f64)
                            as f32;
                    }
                }
            }
        }
        Norm::L2Token | Norm::L2Seq => {
            for group in groups(norm, real, seq) {
                let length = l2(gradient, &group, width);
                if length == 0.0 {
                    continue;
                }
                let scale = alpha / length;
                for &t in &group {
                    let range = t * width..(t + 1) * width;
                    for (d, &g) in delta[range.clone()].iter_mut().zip(&gradient[range]) {
                        *d += (g as f64 * scale) as f32;
                    }
                }
            }
        }
    }
    project(delta, norm, eps, real, seq);
}

/// The largest norm of any group of `delta` (the largest magnitude for
/// L-infinity): what a test holds against eps.
pub fn largest_norm(delta: &[f32], norm: Norm, real: &[bool], seq: usize) -> f64 {
    let width = delta.len() / real.len().max(1);
    match norm {
        Norm::Linf => delta.iter().fold(0.0, |a, v| a.max(v.abs() as f64)),
        _ => groups(norm, real, seq)
            .iter()
            .map(|g| l2(delta, g, width))
            .fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sequences of three tokens, width 4; the second row's last
    /// token is padding.
    fn real() -> Vec<bool> {
        real_tokens(&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], &[1.0, 1.0])
    }

    #[test]
    fn padding_rows_and_tokens_are_not_real() {
        assert_eq!(
            real_tokens(&[1.0, 0.0, 1.0, 1.0], &[1.0, 0.0]),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn noise_has_its_law_and_spares_padding() {
        let real = vec![true; 1000];
        let mut sparse = real.clone();
        sparse[3] = false;
        for law in [Law::Gaussian, Law::Uniform] {
            let x = noise(law, 0.5, 7, stream(3, 1, Use::Noise), &sparse, 100, 10);
            assert!(x[30..40].iter().all(|&v| v == 0.0));
            let n = 9990.0;
            let mean: f64 = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var: f64 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            // Gaussian: variance sigma^2 = 0.25; uniform on [-0.5, 0.5]: 1/12.
            let expected = if law == Law::Gaussian {
                0.25
            } else {
                1.0 / 12.0
            };
            assert!(mean.abs() < 0.02, "{law:?} mean {mean}");
            assert!(
                (var / expected - 1.0).abs() < 0.05,
                "{law:?} variance {var}"
            );
            if law == Law::Uniform {
                assert!(x.iter().all(|v| v.abs() <= 0.5));
            }
            let again = noise(law, 0.5, 7, stream(3, 1, Use::Noise), &sparse, 100, 10);
            assert_eq!(x, again, "the same key draws the same numbers");
            let other = noise(law, 0.5, 7, stream(4, 1, Use::Noise), &sparse, 100, 10);
            assert_ne!(x, other, "another step draws other numbers");
            // Padded to 200 tokens a row (the first 100 real), the same draws.
            let mut wide = vec![false; 2000];
            for r in 0..10 {
                wide[r * 200..r * 200 + 100].copy_from_slice(&sparse[r * 100..(r + 1) * 100]);
            }
            let padded = noise(law, 0.5, 7, stream(3, 1, Use::Noise), &wide, 200, 10);
            for r in 0..10 {
                assert_eq!(
                    x[r * 1000..(r + 1) * 1000],
                    padded[r * 2000..r * 2000 + 1000]
                );
            }
        }
    }

    #[test]
    fn ascent_stays_in_the_ball_and_off_padding() {
        let real = real();
        let gradient: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        for norm in [Norm::L2Token, Norm::L2Seq, Norm::Linf] {
            let mut delta = vec![0.0f32; 24];
            for _ in 0..5 {
                ascend(&mut delta, &gradient, norm, 0.4, 1.0, &real, 3);
                assert!(
                    largest_norm(&delta, norm, &real, 3) <= 1.0 + 1e-6,
                    "{norm:?}"
                );
            }
            assert!(
                delta[20..24].iter().all(|&v| v == 0.0),
                "{norm:?}: padding moved"
            );
            // After enough steps along a fixed gradient, the ball's edge.
            assert!(largest_norm(&delta, norm, &real, 3) > 0.999, "{norm:?}");
            // Every move went up the gradient.
            let ascent: f32 = delta.iter().zip(&gradient).map(|(d, g)| d * g).sum();
            assert!(ascent > 0.0, "{norm:?}");
        }
    }

    #[test]
    fn one_l2_token_step_is_the_normalised_gradient() {
        let real = vec![true];
        let gradient = [3.0f32, 4.0];
        let mut delta = vec![0.0f32; 2];
        ascend(&mut delta, &gradient, Norm::L2Token, 0.5, 10.0, &real, 1);
        assert!((delta[0] - 0.3).abs() < 1e-7 && (delta[1] - 0.4).abs() < 1e-7);
        let mut big = vec![6.0f32, 8.0];
        project(&mut big, Norm::L2Token, 1.0, &real, 1);
        assert!((big[0] - 0.6).abs() < 1e-6 && (big[1] - 0.8).abs() < 1e-6);
    }
}
