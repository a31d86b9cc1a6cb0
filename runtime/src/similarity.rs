//! How alike two sentence embeddings are: what the native command and the
//! browser page report for a pair of sentences.

/// The cosine of the angle between `a` and `b`, summed in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(&p, &q)| p as f64 * q as f64)
            .sum::<f64>()
    };
    (dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()).max(1e-12)) as f32
}
