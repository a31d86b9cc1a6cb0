//! Word substitution from synonym sets, exactly as the public Robust-XLT code
//! perturbs a sentence for RS-DA (PAPER.md, method 3): split on single
//! spaces; a token that is an exact, case-sensitive key with a non-empty
//! neighbour list becomes a uniform draw from itself and its neighbours;
//! every other token stays, so the token count never changes.

use std::collections::HashMap;

use crate::random::SplitMix64;

/// The synonym sets the paper's code ships: counter-fitted word-vector
/// neighbours (see datasets/synonyms/, Apache-2.0, from uclanlp/Robust-XLT).
pub const COUNTERFITTED_NEIGHBORS: &str =
    include_str!("../../datasets/synonyms/counterfitted_neighbors.json");

#[derive(Clone, Debug)]
pub struct SynonymSets {
    neighbours: HashMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}: not a JSON object of word -> list of words: {message}")]
pub struct SynonymError {
    pub origin: String,
    pub message: String,
}

impl SynonymSets {
    /// Synonym sets from JSON text `{"word": ["neighbour", ...], ...}`;
    /// `origin` names the file in errors.
    pub fn from_json(origin: &str, text: &str) -> Result<Self, SynonymError> {
        let neighbours: HashMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(|e| SynonymError {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self { neighbours })
    }

    /// The sets shipped with xltc.
    pub fn counterfitted() -> Self {
        Self::from_json("counterfitted_neighbors.json", COUNTERFITTED_NEIGHBORS)
            .expect("the shipped synonym sets parse")
    }

    /// Words with at least one neighbour.
    pub fn substitutable_words(&self) -> usize {
        self.neighbours.values().filter(|n| !n.is_empty()).count()
    }

    /// The neighbours of `token`: empty for a word that never changes.
    pub fn neighbours(&self, token: &str) -> &[String] {
        self.neighbours.get(token).map_or(&[], Vec::as_slice)
    }

    /// One random substitution of `sentence`.
    pub fn perturb(&self, sentence: &str, rng: &mut SplitMix64) -> String {
        let tokens: Vec<&str> = sentence
            .split(' ')
            .map(|token| {
                let options = self.neighbours(token);
                if options.is_empty() {
                    return token;
                }
                match rng.below(options.len() + 1) {
                    0 => token,
                    k => options[k - 1].as_str(),
                }
            })
            .collect();
        tokens.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> SynonymSets {
        SynonymSets::from_json(
            "t",
            r#"{"movie": ["film", "cinema"], "good": ["fine"], "the": []}"#,
        )
        .unwrap()
    }

    #[test]
    fn only_exact_keys_change_and_the_token_count_stays() {
        let sets = sets();
        let mut rng = SplitMix64::new(1);
        let sentence = "the movie was good  Movie movie, good.";
        for _ in 0..200 {
            let out = sets.perturb(sentence, &mut rng);
            let (a, b): (Vec<&str>, Vec<&str>) =
                (sentence.split(' ').collect(), out.split(' ').collect());
            assert_eq!(a.len(), b.len(), "{out}");
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                match i {
                    1 => assert!(["movie", "film", "cinema"].contains(y), "{out}"),
                    3 => assert!(["good", "fine"].contains(y), "{out}"),
                    _ => assert_eq!(x, y, "{out}"),
                }
            }
        }
    }

    #[test]
    fn each_option_is_drawn_with_probability_one_over_k_plus_one() {
        let sets = sets();
        let mut rng = SplitMix64::new(3);
        let mut counts: HashMap<String, usize> = HashMap::new();
        let draws = 30_000;
        for _ in 0..draws {
            *counts.entry(sets.perturb("movie", &mut rng)).or_default() += 1;
        }
        for word in ["movie", "film", "cinema"] {
            // 10,000 expected, standard deviation about 82.
            let count = counts[word];
            assert!((9_650..10_350).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn the_shipped_sets_are_the_papers() {
        let sets = SynonymSets::counterfitted();
        assert_eq!(sets.neighbours.len(), 49_975);
        assert_eq!(sets.substitutable_words(), 25_591);
        assert!(sets.neighbours("the").is_empty());
    }
}
