//! The optimizer step on the CPU, the oracle of the GPU's: AdamW with bias
//! correction and decoupled weight decay, gradient clipping at a global
//! norm, and the linear learning-rate schedule, each exactly as PyTorch's
//! `AdamW`, `clip_grad_norm_` and transformers' linear schedule compute them.

use rayon::prelude::*;

use super::Real;

/// AdamW's settings; the public recipe's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Whether weight decay applies to the parameter of checkpoint name `name`:
/// not to biases and LayerNorm weights, as transformers' recipe leaves them.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm.weight"))
}

/// The learning rate's factor at optimizer step `step` (from 0) of `total`:
/// linear warm-up over `warmup` steps, then linear decay to 0.
pub fn linear_schedule(step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    ((total.saturating_sub(step)) as f64 / (total - warmup).max(1) as f64).max(0.0)
}

/// Scales every gradient so that their global L2 norm is at most `max_norm`
/// (PyTorch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6), capped
/// at 1); returns the norm before clipping.
pub fn clip_by_global_norm<T: Real>(gradients: &mut [&mut [T]], max_norm: f64) -> f64 {
    // Squares summed in fixed blocks, the blocks in order: the same sum
    // however many threads run.
    const BLOCK: usize = 1 << 14;
    let norm = gradients
        .iter()
        .flat_map(|g| {
            g.par_chunks(BLOCK)
                .map(|block| block.iter().map(|v| v.to_f64().powi(2)).sum::<f64>())
                .collect::<Vec<f64>>()
        })
        .sum::<f64>()
        .sqrt();
    let coefficient = (max_norm / (norm + 1e-6)).min(1.0);
    for g in gradients.iter_mut() {
        g.par_iter_mut()
            .for_each(|v| *v = T::from_f64(v.to_f64() * coefficient));
    }
    norm
}

/// One AdamW update of `param` in place, with its moments `m` and `v`;
/// `step` counts from 1 (bias correction), `decay` says whether weight decay
/// applies.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<T: Real>(
    param: &mut [T],
    grad: &[T],
    m: &mut [T],
    v: &mut [T],
    step: u32,
    lr: f64,
    decay: bool,
    s: &AdamW,
) {
    let correction1 = 1.0 - s.beta1.powi(step as i32);
    let correction2_sqrt = (1.0 - s.beta2.powi(step as i32)).sqrt();
    // Each element on its own: spread over threads, the same bits.
    let elements = param.par_iter_mut().zip(grad).zip(m).zip(v);
    elements.for_each(|(((param, grad), m), v)| {
        let mut p = param.to_f64();
        if decay {
            p *= 1.0 - lr * s.weight_decay;
        }
        let g = grad.to_f64();
        let m_i = s.beta1 * m.to_f64() + (1.0 - s.beta1) * g;
        let v_i = s.beta2 * v.to_f64() + (1.0 - s.beta2) * g * g;
        let denominator = v_i.sqrt() / correction2_sqrt + s.eps;
        p -= lr / correction1 * m_i / denominator;
        *param = T::from_f64(p);
        *m = T::from_f64(m_i);
        *v = T::from_f64(v_i);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert_eq!(linear_schedule(0, 10, 0), 1.0);
        assert_eq!(linear_schedule(4, 10, 0), 0.6);
        assert_eq!(linear_schedule(10, 10, 0), 0.0);
        assert_eq!(linear_schedule(1, 10, 2), 0.5);
        assert_eq!(linear_schedule(2, 10, 2), 1.0);
        assert_eq!(linear_schedule(6, 10, 2), 0.5);
    }

    #[test]
    fn clipping_scales_to_the_norm_and_leaves_small_gradients() {
        let (mut a, mut b) = (vec![3.0f64, 0.0], vec![4.0f64]);
        let norm = clip_by_global_norm(&mut [&mut a[..], &mut b[..]], 1.0);
        assert_eq!(norm, 5.0);
        assert!((a[0] - 0.6).abs() < 1e-6 && (b[0] - 0.8).abs() < 1e-6);
        let mut c = vec![0.1f64];
        clip_by_global_norm(&mut [&mut c[..]], 1.0);
        assert_eq!(c, [0.1]);
    }

    #[test]
    fn the_first_adam_step_moves_by_the_learning_rate() {
        // With bias correction, step 1 moves each weight by lr * sign(g)
        // (up to eps), whatever the gradient's size; decay shrinks first.
        let s = AdamW {
            weight_decay: 0.5,
            ..AdamW::default()
        };
        let mut p = vec![1.0f64, 1.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        adamw_step(&mut p, &[1e-3, -5.0], &mut m, &mut v, 1, 0.1, true, &s);
        assert!((p[0] - (0.95 - 0.1)).abs() < 1e-6, "{p:?}");
        assert!((p[1] - (0.95 + 0.1)).abs() < 1e-6, "{p:?}");
        assert!(!decays("bert.encoder.layer.0.output.LayerNorm.weight"));
        assert!(!decays("classifier.bias"));
        assert!(decays("classifier.weight"));
    }
}
