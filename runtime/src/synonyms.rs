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
            .map(|token| self.draw(token, token, rng).unwrap_or(token))
            .collect();
        tokens.join(" ")
    }

    /// One random substitution of `sentence` by a looser rule than the
    /// paper's (a variant beyond it): each token's word, with the
    /// punctuation around it set aside, is looked up lower-cased; a
    /// substitute takes the word's capitalisation (all capitals, or a first
    /// capital) and the punctuation goes back around it. Still split on
    /// single spaces, so the token count never changes.
    pub fn perturb_ignoring_case(&self, sentence: &str, rng: &mut SplitMix64) -> String {
        let tokens: Vec<String> = sentence
            .split(' ')
            .map(|token| {
                let start = token.find(char::is_alphanumeric).unwrap_or(token.len());
                let end = token.rfind(char::is_alphanumeric).map_or(start, |i| {
                    i + token[i..].chars().next().map_or(1, char::len_utf8)
                });
                let word = &token[start..end.max(start)];
                match self.draw(&word.to_lowercase(), word, rng) {
                    Some(substitute) if substitute != word => format!(
                        "{}{}{}",
                        &token[..start],
                        with_case_of(word, substitute),
                        &token[end.max(start)..]
                    ),
                    _ => token.to_owned(),
                }
            })
            .collect();
        tokens.join(" ")
    }

    /// A uniform draw from `word` and the neighbours of `key`; None (and
    /// no draw) when `key` has none.
    fn draw<'a>(&'a self, key: &str, word: &'a str, rng: &mut SplitMix64) -> Option<&'a str> {
        let options = self.neighbours(key);
        if options.is_empty() {
            return None;
        }
        Some(match rng.below(options.len() + 1) {
            0 => word,
            k => options[k - 1].as_str(),
        })
    }
}

/// `substitute` capitalised as `word` is: all capitals (two letters or
/// more), a first capital, or as it is.
fn with_case_of(word: &str, substitute: &str) -> String {
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        return substitute.to_uppercase();
    }
    match word.chars().next() {
        Some(first) if first.is_uppercase() => {
            let mut chars = substitute.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        }
        _ => substitute.to_owned(),
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
    fn ignoring_case_keeps_punctuation_and_capitals_in_place() {
        let sets = sets();
        let mut rng = SplitMix64::new(11);
        let sentence = "The Movie, (movie) was GOOD. good-ish the";
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let out = sets.perturb_ignoring_case(sentence, &mut rng);
            let t: Vec<&str> = out.split(' ').collect();
            assert_eq!(t.len(), 7, "{out}");
            assert!(["Movie,", "Film,", "Cinema,"].contains(&t[1]), "{out}");
            assert!(["(movie)", "(film)", "(cinema)"].contains(&t[2]), "{out}");
            assert!(["GOOD.", "FINE."].contains(&t[4]), "{out}");
            // Inner punctuation makes another word: "good-ish" is no key.
            assert_eq!((t[0], t[3], t[5], t[6]), ("The", "was", "good-ish", "the"));
            seen.insert(t[1].to_owned());
        }
        assert_eq!(
            seen.len(),
            3,
            "every option of a capitalised word drawn: {seen:?}"
        );
        // The paper's rule leaves every one of those tokens as it is.
        assert_eq!(
            sets.perturb("Movie, (movie) GOOD.", &mut rng),
            "Movie, (movie) GOOD."
        );
    }

    #[test]
    fn the_shipped_sets_are_the_papers() {
        let sets = SynonymSets::counterfitted();
        assert_eq!(sets.neighbours.len(), 49_975);
        assert_eq!(sets.substitutable_words(), 25_591);
        assert!(sets.neighbours("the").is_empty());
    }
}
