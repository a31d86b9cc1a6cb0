//! The statistics of randomized smoothing (Cohen, Rosenfeld and Kolter,
//! 2019): the smoothed classifier's prediction, which abstains unless a
//! binomial test separates the top two classes' votes, and its certified
//! L2 radius sigma * PhiInverse(pA), pA being a one-sided Clopper-Pearson
//! lower confidence bound on the top class's probability under the noise.

/// The standard normal's distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal's quantile function, by bisection on [`normal_cdf`]
/// (to the last bits of an f64; p in (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0, "a normal quantile of {p}");
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    let f = |x: u64| libm::lgamma(x as f64 + 1.0);
    f(n) - f(k) - f(n - k)
}

/// P(X >= k) for X ~ Binomial(n, p), summed term by term in log space.
pub fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    (k..=n)
        .map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

/// The two-sided p-value of `k` successes in `n` fair trials (the test
/// Cohen et al.'s PREDICT makes of the top class against the runner-up).
pub fn binomial_p_value(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let extreme = k.max(n - k);
    if 2 * extreme == n {
        return 1.0;
    }
    (2.0 * binomial_upper_tail(extreme, n, 0.5)).min(1.0)
}

/// The regularized incomplete beta function I_x(a, b), by its continued
/// fraction (modified Lentz), on the side where it converges fast.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    let ln_front =
        a * x.ln() + b * (1.0 - x).ln() + libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b);
    const TINY: f64 = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut fraction = d;
    for m in 1..10_000 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            fraction *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    (ln_front.exp() * fraction / a).clamp(0.0, 1.0)
}

/// The one-sided (1 - alpha) Clopper-Pearson lower bound of a proportion
/// with `k` successes in `n` trials: the alpha quantile of Beta(k, n - k + 1),
/// by bisection (0 when k is 0).
pub fn clopper_pearson_lower(k: u64, n: u64, alpha: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let (a, b) = (k as f64, (n - k) as f64 + 1.0);
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if incomplete_beta(mid, a, b) < alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The smoothed classifier's prediction from vote counts: the top class,
/// or None (abstain) when the two-sided binomial test of its votes against
/// the runner-up's is not significant at `alpha`. Ties go to the first class.
pub fn smoothed_prediction(votes: &[u64], alpha: f64) -> Option<usize> {
    let (top, runner_up) = top_two(votes);
    let (a, b) = (votes[top], runner_up.map_or(0, |r| votes[r]));
    (binomial_p_value(a, a + b) <= alpha).then_some(top)
}

/// A certified prediction: the class chosen from selection votes, and the
/// L2 radius within which the smoothed classifier is certified to keep it,
/// from `votes` (drawn independently of the selection); None (abstain)
/// when the bound on the class's probability is not above one half.
pub fn certify(selection: &[u64], votes: &[u64], sigma: f64, alpha: f64) -> Option<(usize, f64)> {
    let (class, _) = top_two(selection);
    let n = votes.iter().sum::<u64>();
    let bound = clopper_pearson_lower(votes[class], n, alpha);
    (bound > 0.5).then(|| (class, sigma * normal_quantile(bound)))
}

/// The class with the most votes (the first of equals) and the runner-up.
fn top_two(votes: &[u64]) -> (usize, Option<usize>) {
    let mut order: Vec<usize> = (0..votes.len()).collect();
    order.sort_by(|&a, &b| votes[b].cmp(&votes[a]).then(a.cmp(&b)));
    (order[0], order.get(1).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_quantile_inverts_the_distribution() {
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((normal_quantile(0.5)).abs() < 1e-15);
        assert!((normal_quantile(0.001) + 3.090_232_306_167_813_5).abs() < 1e-11);
    }

    #[test]
    fn binomial_tails_and_p_values_by_hand() {
        // P(X >= 9) for 10 fair trials: 11 / 1024.
        assert!((binomial_upper_tail(9, 10, 0.5) - 11.0 / 1024.0).abs() < 1e-15);
        assert!((binomial_p_value(9, 10) - 22.0 / 1024.0).abs() < 1e-15);
        assert!((binomial_p_value(1, 10) - 22.0 / 1024.0).abs() < 1e-15);
        assert_eq!(binomial_p_value(5, 10), 1.0);
    }

    /// The bound p solves P(X >= k | p) = alpha, checked by the binomial
    /// tail summed directly; k = n has the closed form alpha^(1/n).
    #[test]
    fn clopper_pearson_solves_its_defining_equation() {
        assert!((clopper_pearson_lower(100, 100, 0.001) - 0.001f64.powf(0.01)).abs() < 1e-12);
        assert_eq!(clopper_pearson_lower(0, 50, 0.001), 0.0);
        for (k, n, alpha) in [
            (990, 1000, 0.001),
            (60, 100, 0.05),
            (7, 20, 0.01),
            (1, 3, 0.1),
        ] {
            let p = clopper_pearson_lower(k, n, alpha);
            let tail = binomial_upper_tail(k, n, p);
            assert!(
                (tail - alpha).abs() < 1e-9 * alpha.max(1e-3),
                "{k}/{n}: {p} {tail}"
            );
            assert!(p < k as f64 / n as f64);
        }
    }

    #[test]
    fn smoothed_predictions_abstain_on_close_votes_and_certify_clear_ones() {
        assert_eq!(smoothed_prediction(&[90, 10], 0.001), Some(0));
        assert_eq!(smoothed_prediction(&[48, 52], 0.001), None);
        assert_eq!(smoothed_prediction(&[3, 0, 97], 0.001), Some(2));
        // 990 of 1000 votes at alpha 0.001: pA = 0.9792..., radius sigma 2.038...
        let (class, radius) = certify(&[1, 99], &[10, 990], 0.25, 0.001).unwrap();
        let expected = 0.25 * normal_quantile(clopper_pearson_lower(990, 1000, 0.001));
        assert_eq!(class, 1);
        assert!((radius - expected).abs() < 1e-15 && radius > 0.45 && radius < 0.55);
        assert_eq!(certify(&[60, 40], &[55, 45], 0.25, 0.001), None);
    }
}
