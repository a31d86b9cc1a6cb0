//! Text in, predictions out: the sequences a model reads for each request,
//! the graph outputs a prediction takes, and the predictions (and their
//! JSON) from those outputs' rows. One definition for the command line (on
//! every engine), evaluation and the browser. A classifier reads a sentence
//! pair as one input; an encoder embeds each sentence on its own, as a
//! bi-encoder is used, and compares them.

use serde_json::json;

use crate::artifact::OutputKind;
use crate::similarity::cosine;
use crate::tokenizer::{Encoding, Overflow, TextTokenizer, TokenizerError};

/// One input: a sentence, or a sentence pair, and where it came from (for errors).
#[derive(Clone, Debug)]
pub struct Request {
    pub origin: String,
    pub text: String,
    pub pair: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    Classification {
        probabilities: Vec<f32>,
        logits: Vec<f32>,
    },
    Embedding {
        embedding: Vec<f32>,
        pair_embedding: Option<Vec<f32>>,
    },
}

/// A request that could not be tokenized, named by where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{origin}")]
pub struct RequestError {
    pub origin: String,
    #[source]
    pub source: TokenizerError,
}

/// The index of the largest value, the first of equals: a classifier's
/// prediction from its logits or probabilities.
pub fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

impl Prediction {
    /// The index of the most probable label, for a classification; the
    /// first of equals, as evaluation and training count it.
    pub fn label(&self) -> Option<usize> {
        let Prediction::Classification { probabilities, .. } = self else {
            return None;
        };
        Some(argmax(probabilities))
    }

    /// Cosine similarity of a sentence and its pair, for embeddings of a pair.
    pub fn cosine(&self) -> Option<f32> {
        match self {
            Prediction::Embedding {
                embedding,
                pair_embedding: Some(other),
            } => Some(cosine(embedding, other)),
            _ => None,
        }
    }

    /// The prediction of `request` as `xltc run --json` writes it and the
    /// page reads it; `labels` are the classifier's.
    pub fn to_json(&self, request: &Request, labels: &[String]) -> serde_json::Value {
        match self {
            Prediction::Classification {
                probabilities,
                logits,
            } => json!({
                "text": request.text,
                "pair": request.pair,
                "label": labels.get(self.label().unwrap_or(0)),
                "labels": labels,
                "probabilities": probabilities,
                "logits": logits,
            }),
            Prediction::Embedding {
                embedding,
                pair_embedding,
            } => json!({
                "text": request.text,
                "pair": request.pair,
                "embedding": embedding,
                "pair_embedding": pair_embedding,
                "cosine": self.cosine(),
            }),
        }
    }
}

/// The sequences the graph sees: one a request for a classifier; for an
/// embedding model, the text and then (if any) the pair as separate sequences.
pub fn request_sequences(
    output: OutputKind,
    tokenizer: &TextTokenizer,
    requests: &[Request],
    overflow: Overflow,
) -> Result<Vec<Encoding>, RequestError> {
    let mut sequences = Vec::new();
    for request in requests {
        let encode = |text: &str, pair: Option<&str>| {
            tokenizer
                .encode(text, pair, overflow)
                .map_err(|source| RequestError {
                    origin: request.origin.clone(),
                    source,
                })
        };
        match output {
            OutputKind::Classification => {
                sequences.push(encode(&request.text, request.pair.as_deref())?)
            }
            OutputKind::SentenceEmbedding { .. } => {
                sequences.push(encode(&request.text, None)?);
                if let Some(pair) = &request.pair {
                    sequences.push(encode(pair, None)?);
                }
            }
        }
    }
    Ok(sequences)
}

/// The graph outputs a prediction reads: a classifier's logits and the
/// probabilities of the graph's own softmax, an encoder's sentence embeddings.
pub fn prediction_outputs(output: OutputKind) -> &'static [&'static str] {
    match output {
        OutputKind::Classification => &["logits", "probabilities"],
        OutputKind::SentenceEmbedding { .. } => &["sentence_embedding"],
    }
}

/// The predictions of `requests` from the rows of [`prediction_outputs`]
/// (`[output][sequence]`, the sequences of [`request_sequences`]).
pub fn assemble(
    output: OutputKind,
    requests: &[Request],
    rows: Vec<Vec<Vec<f32>>>,
) -> Vec<Prediction> {
    let mut outputs = rows.into_iter().map(Vec::into_iter);
    let mut first = outputs.next().expect("a prediction reads an output");
    let mut second = outputs.next();
    let mut next = || first.next().expect("one row per sequence");
    requests
        .iter()
        .map(|request| match output {
            OutputKind::Classification => Prediction::Classification {
                logits: next(),
                probabilities: second
                    .as_mut()
                    .and_then(Iterator::next)
                    .expect("one row of probabilities per sequence"),
            },
            OutputKind::SentenceEmbedding { .. } => Prediction::Embedding {
                embedding: next(),
                pair_embedding: request.pair.as_ref().map(|_| next()),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5, 0.1]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn an_encoders_pair_is_two_embeddings_and_a_classifiers_one_row() {
        let request = |pair: Option<&str>| Request {
            origin: "test".into(),
            text: "a".into(),
            pair: pair.map(str::to_owned),
        };
        let requests = [request(Some("b")), request(None)];
        let rows = vec![vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![3.0, 4.0]]];
        let embedding = OutputKind::SentenceEmbedding { normalize: false };
        let predictions = assemble(embedding, &requests, rows);
        assert_eq!(predictions[0].cosine(), Some(0.0));
        assert_eq!(
            predictions[1],
            Prediction::Embedding {
                embedding: vec![3.0, 4.0],
                pair_embedding: None
            }
        );
        let rows = vec![
            vec![vec![0.0, 1.0]; 2],
            vec![vec![0.3, 0.7], vec![0.6, 0.4]],
        ];
        let predictions = assemble(OutputKind::Classification, &requests, rows);
        assert_eq!(predictions[0].label(), Some(1));
        assert_eq!(predictions[1].label(), Some(0));
        let labels = ["no".to_owned(), "yes".to_owned()];
        let json = predictions[0].to_json(&requests[0], &labels);
        assert_eq!(json["label"], "yes");
        assert_eq!(json["pair"], "b");
    }
}
