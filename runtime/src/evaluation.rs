//! The statistics of an evaluation: accuracy with its Wilson interval, and the
//! one decision threshold of a similarity score, tuned on development data.

/// The 97.5% quantile of the standard normal: a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval (95%) of a proportion `correct / total`.
pub fn wilson_interval(correct: usize, total: usize) -> (f64, f64) {
    if total == 0 {
        return (0.0, 1.0);
    }
    let n = total as f64;
    let p = correct as f64 / n;
    let z2 = Z_95 * Z_95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The threshold t that makes `score >= t` predict the positive label most
/// accurately on `(score, positive)` examples, and that accuracy. Candidates
/// are midpoints between neighbouring distinct scores (and one below all);
/// ties go to the lowest threshold, so the choice is deterministic.
pub fn best_threshold(examples: &[(f32, bool)]) -> (f32, f64) {
    let mut sorted: Vec<(f32, bool)> = examples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|e| e.1).count();
    // With t below every score, everything is predicted positive.
    let mut correct = positives;
    let mut best = (sorted.first().map_or(0.0, |e| e.0 - 1e-3), correct);
    let mut i = 0;
    while i < sorted.len() {
        // Move every example of this score below the threshold.
        let score = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == score {
            if sorted[i].1 {
                correct -= 1;
            } else {
                correct += 1;
            }
            i += 1;
        }
        let threshold = match sorted.get(i) {
            Some(next) => 0.5 * (score + next.0),
            None => score + 1e-3,
        };
        if correct > best.1 {
            best = (threshold, correct);
        }
    }
    (best.0, best.1 as f64 / sorted.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_worked_example() {
        // 81 of 100: the interval is (0.7222, 0.8749) to four places.
        let (lo, hi) = wilson_interval(81, 100);
        assert!(
            (lo - 0.7222).abs() < 1e-4 && (hi - 0.8749).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
    }

    #[test]
    fn the_threshold_is_the_best_split_by_brute_force() {
        let examples = [
            (0.1, false),
            (0.4, true),
            (0.35, false),
            (0.8, true),
            (0.5, false),
            (0.9, true),
            (0.45, true),
        ];
        let (t, accuracy) = best_threshold(&examples);
        let brute = |t: f32| {
            examples.iter().filter(|(s, p)| (*s >= t) == *p).count() as f64 / examples.len() as f64
        };
        assert_eq!(accuracy, brute(t));
        for candidate in [0.0, 0.2, 0.37, 0.42, 0.47, 0.6, 0.85, 1.0] {
            assert!(brute(candidate) <= accuracy, "{candidate}");
        }
        assert_eq!(best_threshold(&[(0.3, true), (0.3, true)]).1, 1.0);
    }
}
