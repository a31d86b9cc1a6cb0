//! What a pair of sentences scores: a classifier's label probabilities for the
//! pair read as one input, or a similarity of the two sentences (the cosine
//! of an encoder's sentence embeddings, or the lexical baseline's word
//! overlap). Every distinct input is run once, however many files share it.

use std::collections::{HashMap, HashSet};

use xltc_runtime::prediction::request_sequences;
use xltc_runtime::{cosine, Encoding, Overflow, TextTokenizer};

use super::smoothing::{input_key, smooth, Smoothed, Smoothing};
use crate::frontend::{Model, ModelOutput};
use crate::predict::{mean_hidden_states, predict, Engine, PredictError, Prediction, Request};

/// How pairs are scored.
pub enum Scorer<'a> {
    Model {
        model: &'a Model,
        engine: &'a Engine,
        tokenizer: &'a TextTokenizer,
        batch: usize,
        /// Put before every sentence ("query: " for e5).
        prefix: String,
        /// A classifier smoothed by noise on its word embeddings.
        smoothing: Option<Smoothing>,
    },
    /// Lexical baseline: the Jaccard overlap of the two sentences' lower-cased
    /// word sets.
    WordOverlap,
}

/// A pair's score.
#[derive(Clone, Debug, PartialEq)]
pub enum PairScore {
    Probabilities(Vec<f32>),
    Similarity(f32),
    /// A smoothed classifier's votes and prediction.
    Smoothed(Smoothed),
}

/// The scores of a set of inputs, looked up by text.
#[derive(Default)]
pub struct Scored {
    probabilities: HashMap<(String, String), Vec<f32>>,
    smoothed: HashMap<(String, String), Smoothed>,
    embeddings: HashMap<String, Vec<f32>>,
    word_overlap: bool,
}

impl Scorer<'_> {
    /// Whether the score is a similarity with a threshold (else class probabilities).
    pub fn is_similarity(&self) -> bool {
        match self {
            Scorer::Model { model, .. } => model.output != ModelOutput::Classification,
            Scorer::WordOverlap => true,
        }
    }

    /// Runs the model on every distinct input of `pairs` (for an encoder,
    /// every distinct sentence, which alignment reads too); a classifier
    /// also runs each distinct sentence of `aligned` on its own, for the
    /// mean of its last hidden states that alignment compares. `progress`
    /// hears (done, total) sequences.
    pub fn score(
        &self,
        pairs: &[(&str, &str)],
        aligned: &[&str],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Scored, PredictError> {
        let Scorer::Model {
            model,
            engine,
            tokenizer,
            batch,
            prefix,
            smoothing,
        } = self
        else {
            return Ok(Scored {
                word_overlap: true,
                ..Scored::default()
            });
        };
        let request = |text: &str, pair: Option<&str>| Request {
            origin: format!("the input {text:?}"),
            text: format!("{prefix}{text}"),
            pair: pair.map(|p| format!("{prefix}{p}")),
        };
        // A classifier reads each distinct pair; an encoder embeds each
        // distinct sentence once.
        let classifier = model.output == ModelOutput::Classification;
        let (pair_inputs, sentence_inputs) = if classifier {
            (distinct(pairs.iter().copied()), Vec::new())
        } else {
            (
                Vec::new(),
                distinct(pairs.iter().flat_map(|&(a, b)| [a, b])),
            )
        };
        let requests: Vec<Request> = pair_inputs
            .iter()
            .map(|(a, b)| request(a, Some(b)))
            .chain(sentence_inputs.iter().map(|s| request(s, None)))
            .collect();
        // A classifier runs the sentences alone after its pairs; progress
        // counts both.
        let alone = if classifier {
            distinct(aligned.iter().copied())
        } else {
            Vec::new()
        };
        let mut first = 0;
        let mut scored = Scored::default();
        if let (Some(smoothing), true) = (smoothing, classifier) {
            let encodings =
                request_sequences(model.output, tokenizer, &requests, Overflow::Truncate)?;
            let keyed: Vec<(Encoding, u64)> = encodings
                .into_iter()
                .zip(&requests)
                .map(|(e, r)| (e, input_key(smoothing.seed, &r.text, r.pair.as_deref())))
                .collect();
            let out = smooth(engine, model, &keyed, *batch, smoothing, |d, t| {
                first = t;
                progress(d, t + alone.len())
            })?;
            for ((a, b), smoothed) in pair_inputs.into_iter().zip(out) {
                scored
                    .smoothed
                    .insert((a.to_owned(), b.to_owned()), smoothed);
            }
        } else {
            let out = predict(
                engine,
                model,
                tokenizer,
                &requests,
                Overflow::Truncate,
                *batch,
                |d, t| {
                    first = t;
                    progress(d, t + alone.len())
                },
            )?;
            scored.insert_predictions(pair_inputs, sentence_inputs, out);
        }
        if !alone.is_empty() {
            let requests: Vec<Request> = alone.iter().map(|s| request(s, None)).collect();
            let means = mean_hidden_states(
                engine,
                model,
                tokenizer,
                &requests,
                Overflow::Truncate,
                *batch,
                |d, t| progress(first + d, first + t),
            )?;
            for (sentence, mean) in alone.into_iter().zip(means) {
                scored.embeddings.insert(sentence.to_owned(), mean);
            }
        }
        Ok(scored)
    }
}

/// The items of `items` without repeats, in first-seen order.
fn distinct<T: Eq + std::hash::Hash + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|item| seen.insert(*item)).collect()
}

impl Scored {
    /// Keeps `out`, the predictions of the pairs and then the sentences.
    fn insert_predictions(
        &mut self,
        pairs: Vec<(&str, &str)>,
        sentences: Vec<&str>,
        out: Vec<Prediction>,
    ) {
        let mut out = out.into_iter();
        for (a, b) in pairs {
            if let Some(Prediction::Classification { probabilities, .. }) = out.next() {
                let key = (a.to_owned(), b.to_owned());
                self.probabilities.insert(key, probabilities);
            }
        }
        for sentence in sentences {
            if let Some(Prediction::Embedding { embedding, .. }) = out.next() {
                self.embeddings.insert(sentence.to_owned(), embedding);
            }
        }
    }

    /// The score of a pair that was scored.
    pub fn pair(&self, a: &str, b: &str) -> PairScore {
        if self.word_overlap {
            return PairScore::Similarity(word_overlap(a, b));
        }
        let key = (a.to_owned(), b.to_owned());
        if let Some(p) = self.probabilities.get(&key) {
            return PairScore::Probabilities(p.clone());
        }
        if let Some(s) = self.smoothed.get(&key) {
            return PairScore::Smoothed(s.clone());
        }
        let (x, y) = (self.embedding(a), self.embedding(b));
        PairScore::Similarity(cosine(
            x.expect("every sentence was scored"),
            y.expect("every sentence was scored"),
        ))
    }

    /// A sentence's embedding, for an encoder.
    pub fn embedding(&self, sentence: &str) -> Option<&[f32]> {
        self.embeddings.get(sentence).map(Vec::as_slice)
    }
}

/// The Jaccard overlap of two sentences' sets of lower-cased words (runs of
/// letters and digits).
pub fn word_overlap(a: &str, b: &str) -> f32 {
    let words = |s: &str| -> HashSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (x, y) = (words(a), words(b));
    let union = x.union(&y).count();
    if union == 0 {
        return 0.0;
    }
    x.intersection(&y).count() as f32 / union as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_overlap_is_jaccard_of_lowercased_words() {
        assert_eq!(word_overlap("The cat, the dog.", "a CAT"), 1.0 / 4.0);
        assert_eq!(word_overlap("Straße über", "straße"), 0.5);
        assert_eq!(word_overlap("", "..."), 0.0);
    }
}
