//! Zero-shot cross-lingual evaluation: accuracy per language and in the
//! generalized language-pair matrix, robustness to synonym substitution on
//! English, and cross-lingual consistency (does a translation get the
//! prediction its English original gets, and how close are their
//! representations). Only dev-en ever tunes anything (the threshold of a
//! similarity score).

pub mod certify;
pub mod report;
pub mod scorer;
pub mod smoothing;
pub mod suite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use xltc_runtime::evaluation::{best_threshold, wilson_interval};
use xltc_runtime::pairs::label_index;
use xltc_runtime::{cosine, LabelledPair, PairFile, SplitMix64, SynonymSets};

use crate::predict::PredictError;
use scorer::{PairScore, Scored, Scorer};
use suite::Suite;

/// Random synonym substitution on the English test file and on the English
/// originals of the translations, as RS-DA draws it.
pub struct Perturbation<'a> {
    pub synonyms: &'a SynonymSets,
    /// Where the synonym sets came from, for the report.
    pub synonyms_origin: String,
    pub draws: usize,
    pub seed: u64,
    /// Also keep, for each pair, the draw with the highest loss.
    pub worst_of_k: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(
        "{path} line {line}: label {label:?} is not one of the {what} ({known}); \
         use the model's labels or their numbers"
    )]
    Label {
        path: PathBuf,
        line: usize,
        label: String,
        what: &'static str,
        known: String,
    },
    #[error(
        "{0}: missing; a similarity score needs one threshold, and it is tuned on English \
         development data only (never on a test file)"
    )]
    NoDev(PathBuf),
    #[error(transparent)]
    Predict(#[from] PredictError),
}

/// Accuracy on one file.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    pub file: String,
    pub languages: (String, String),
    pub pairs: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// 95% Wilson interval of the accuracy.
    pub interval: (f64, f64),
}

#[derive(Clone, Debug, Serialize)]
pub struct LanguageRow {
    pub language: String,
    pub pairs: usize,
    pub accuracy: f64,
    pub interval: (f64, f64),
    /// Accuracy minus English accuracy.
    pub gap_to_english: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Averages {
    /// Mean accuracy over the languages' own test files.
    pub languages: f64,
    pub languages_without_english: Option<f64>,
    /// Mean over the matrix cells present, with and without the diagonal.
    pub matrix: Option<f64>,
    pub matrix_off_diagonal: Option<f64>,
}

/// The generalized setting: accuracy[a][b] with sentence 1 in languages[a]
/// and sentence 2 in languages[b].
#[derive(Clone, Debug, Serialize)]
pub struct Matrix {
    pub languages: Vec<String>,
    pub accuracy: Vec<Vec<Option<f64>>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Robustness {
    pub file: String,
    pub pairs: usize,
    pub draws: usize,
    pub seed: u64,
    pub synonyms: String,
    pub clean_accuracy: f64,
    /// Mean accuracy over the random draws.
    pub perturbed_accuracy: f64,
    /// Share of pairs whose prediction equals the clean one under every draw.
    pub unchanged: f64,
    /// Accuracy when each pair keeps its draw of highest loss.
    pub worst_of_k_accuracy: Option<f64>,
    /// Share of words the draws replaced.
    pub words_replaced: f64,
}

/// How a language's predictions and representations agree with English's on
/// the same examples (by id).
#[derive(Clone, Debug, Serialize)]
pub struct Consistency {
    pub language: String,
    pub shared_pairs: usize,
    /// Share of examples predicted as their English original is.
    pub agreement: f64,
    /// Mean cosine of an English sentence's embedding and its translation's
    /// (a classifier's: the mean of its last hidden states, each sentence alone).
    pub alignment: Option<f64>,
    /// Examples on which the substituted English is compared: every shared
    /// one (each English original is substituted, whether or not the English
    /// test's own selection holds it).
    pub perturbed_pairs: Option<usize>,
    /// The same against randomly substituted English (mean over draws).
    pub perturbed_agreement: Option<f64>,
    pub perturbed_alignment: Option<f64>,
    /// The same against each pair's worst-of-K English draw.
    pub attacked_agreement: Option<f64>,
    pub attacked_alignment: Option<f64>,
    /// Alignment against each pair's English draw of lowest alignment: the
    /// worst of K for alignment itself (the attack above picks the draw that
    /// hurts the English class, which need not be the one that moves the
    /// embeddings most).
    pub worst_alignment: Option<f64>,
    /// Retrieval: the share of the shared examples' sentences (two an
    /// example) whose English original's sentence is nearer its own
    /// translation than every other distinct translation in the same place
    /// of the file's shared examples (strictly: a tie is a miss). A cosine
    /// near 1 says little when non-translations are as near; this says
    /// whether the translation still stands out.
    pub retrieval: Option<f64>,
    /// The same with each English original on its draw of lowest alignment.
    pub worst_retrieval: Option<f64>,
}

/// One test pair's predictions, written to pairs.tsv so that two runs
/// evaluated on the same pairs can be compared pair by pair (a paired test
/// resolves differences that two separate accuracies cannot). Classes are
/// indices into the model's labels (0 and 1 under a similarity threshold).
#[derive(Clone, Debug, PartialEq)]
pub struct PairRecord {
    pub file: String,
    pub id: String,
    pub gold: usize,
    pub predicted: usize,
    /// The English test under `--perturb`: the class under each draw, and
    /// under the worst-of-K draw (with `--attack worst-of-k`).
    pub substituted: Vec<usize>,
    pub worst: Option<usize>,
    /// A translation whose English original is known: that original's class,
    /// clean and under its worst-of-K draw.
    pub english: Option<usize>,
    pub english_attacked: Option<usize>,
    /// Mean cosine of the two sentences' embeddings with their English
    /// originals', clean and with the worst-of-K draw (models with sentence
    /// embeddings).
    pub alignment: Option<f64>,
    pub alignment_attacked: Option<f64>,
    /// The lowest alignment over the English original's K draws
    /// (`--attack worst-of-k`).
    pub alignment_worst: Option<f64>,
    /// Of the two sentences, how many their English original's retrieve
    /// ([`Consistency::retrieval`]), clean and on the draw of lowest
    /// alignment.
    pub retrieved: Option<u8>,
    pub retrieved_worst: Option<u8>,
}

/// A smoothed classifier's abstentions and certificates on one file.
#[derive(Clone, Debug, Serialize)]
pub struct SmoothedFile {
    pub file: String,
    pub languages: (String, String),
    pub pairs: usize,
    /// Pairs the smoothed classifier abstained on (counted as wrong).
    pub abstained: usize,
    /// (radius, share of the pairs predicted correctly and certified at
    /// that L2 radius or more), when certified.
    pub certified: Vec<(f64, f64)>,
    /// Each pair's smoothed prediction, in file order.
    pub predictions: Vec<SmoothedPrediction>,
}

/// One pair's smoothed prediction: its id, gold class, votes, predicted
/// class (None: abstained) and, when certified, the certified class and
/// its L2 radius (None: the certificate abstained).
#[derive(Clone, Debug, Serialize)]
pub struct SmoothedPrediction {
    pub id: String,
    pub gold: usize,
    pub votes: Vec<u64>,
    pub predicted: Option<usize>,
    pub certified: Option<(usize, f64)>,
}

/// Randomized smoothing's settings and what it did on every file.
#[derive(Clone, Debug, Serialize)]
pub struct SmoothingReport {
    pub settings: smoothing::Smoothing,
    pub files: Vec<SmoothedFile>,
}

/// The radii certified accuracy is reported at: 0 to 4 sigma in steps of
/// sigma / 4.
pub fn certified_radii(sigma: f64) -> Vec<f64> {
    (0..=16).map(|k| sigma * k as f64 / 4.0).collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// "argmax over the labels", or the similarity and its threshold.
    pub decision: String,
    pub threshold: Option<f32>,
    pub dev: Option<FileResult>,
    pub files: Vec<FileResult>,
    pub languages: Vec<LanguageRow>,
    pub averages: Averages,
    pub matrix: Option<Matrix>,
    pub robustness: Option<Robustness>,
    pub consistency: Vec<Consistency>,
    /// With a smoothed classifier: abstentions and certified accuracy.
    pub smoothing: Option<SmoothingReport>,
    /// Every test pair's predictions, in file order (pairs.tsv, not the JSON).
    #[serde(skip)]
    pub pairs: Vec<PairRecord>,
    pub notes: Vec<String>,
    /// Sequences the model ran, and the seconds it took.
    pub sequences: usize,
    pub seconds: f64,
}

/// The class of a smoothed classifier's abstention.
pub const ABSTAINED: usize = usize::MAX;

/// How a score becomes a class: the classifier's argmax, or a similarity at
/// or above the threshold meaning label 1.
#[derive(Clone, Copy, Debug)]
enum Decision {
    Argmax,
    Threshold(f32),
}

impl Decision {
    fn class(self, score: &PairScore) -> usize {
        match (self, score) {
            (Decision::Argmax, PairScore::Probabilities(p)) => argmax(p),
            // An abstention is no class: never the gold one.
            (Decision::Argmax, PairScore::Smoothed(s)) => s.class.unwrap_or(ABSTAINED),
            (Decision::Threshold(t), PairScore::Similarity(s)) => usize::from(*s >= t),
            _ => unreachable!("the decision matches the scorer"),
        }
    }

    /// How wrong a score is for `gold`: cross-entropy for a classifier, the
    /// distance past the threshold towards the wrong side for a similarity.
    fn loss(self, score: &PairScore, gold: usize) -> f64 {
        match (self, score) {
            (Decision::Argmax, PairScore::Probabilities(p)) => -(p[gold].max(1e-30) as f64).ln(),
            (Decision::Argmax, PairScore::Smoothed(s)) => {
                let share = s.votes[gold] as f64 / s.votes.iter().sum::<u64>().max(1) as f64;
                -share.max(1e-30).ln()
            }
            (Decision::Threshold(t), PairScore::Similarity(s)) => {
                let margin = (*s - t) as f64;
                if gold == 1 {
                    -margin
                } else {
                    margin
                }
            }
            _ => unreachable!("the decision matches the scorer"),
        }
    }
}

pub use xltc_runtime::prediction::argmax;

/// Gold labels as class numbers: a model's labels (by name, or by number), or
/// 0 and 1 for a similarity threshold.
struct Labels {
    names: Vec<String>,
    what: &'static str,
}

impl Labels {
    fn class(&self, file: &PairFile, pair: &LabelledPair) -> Result<usize, EvalError> {
        label_index(&self.names, &pair.label).ok_or_else(|| EvalError::Label {
            path: file.path.clone(),
            line: pair.line,
            label: pair.label.clone(),
            what: self.what,
            known: self.names.join(", "),
        })
    }
}

/// One English pair substituted `draws` times; the generator is seeded from
/// the run's seed and the example id, so a pair gets the same draws whatever
/// else is evaluated.
fn draw_perturbations(pair: &LabelledPair, p: &Perturbation) -> Vec<(String, String)> {
    let id_hash = pair.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = SplitMix64::new(p.seed ^ id_hash);
    (0..p.draws)
        .map(|_| {
            let a = p.synonyms.perturb(&pair.sentence1, &mut rng);
            let b = p.synonyms.perturb(&pair.sentence2, &mut rng);
            (a, b)
        })
        .collect()
}

fn file_result(
    name: &str,
    languages: (String, String),
    correct: usize,
    pairs: usize,
) -> FileResult {
    FileResult {
        file: name.to_owned(),
        languages,
        pairs,
        correct,
        accuracy: correct as f64 / pairs.max(1) as f64,
        interval: wilson_interval(correct, pairs),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    (count > 0).then(|| sum / count as f64)
}

/// Runs the whole evaluation: every input is scored in one pass (with
/// `progress` hearing sequences done and total), then counted.
pub fn evaluate(
    suite: &Suite,
    scorer: &Scorer,
    perturbation: Option<&Perturbation>,
    mut progress: impl FnMut(usize, usize),
) -> Result<Evaluation, EvalError> {
    let similarity = scorer.is_similarity();
    let labels = match scorer {
        Scorer::Model { model, .. } if !similarity => Labels {
            names: model.config.labels.clone(),
            what: "model's labels",
        },
        _ => Labels {
            names: vec!["0".into(), "1".into()],
            what: "labels a similarity threshold tells apart",
        },
    };
    // Every label is checked before anything runs.
    let mut gold: HashMap<(&Path, usize), usize> = HashMap::new();
    let files = suite
        .tests
        .iter()
        .map(|t| &t.file)
        .chain(&suite.dev)
        .chain(&suite.english);
    for file in files {
        for pair in &file.pairs {
            gold.insert((file.path.as_path(), pair.line), labels.class(file, pair)?);
        }
    }
    if similarity && suite.dev.is_none() {
        return Err(EvalError::NoDev(suite.folder.join("dev-en.tsv")));
    }
    let gold_of = |file: &PairFile, pair: &LabelledPair| gold[&(file.path.as_path(), pair.line)];

    let english_by_id: HashMap<&str, &LabelledPair> = suite
        .english
        .iter()
        .flat_map(|f| f.pairs.iter().map(|p| (p.id.as_str(), p)))
        .collect();
    let english_test = suite.tests.iter().find(|t| t.name == "test-en.tsv");
    let others: Vec<_> = suite
        .tests
        .iter()
        .filter(|t| t.is_monolingual() && t.languages.0 != "en")
        .collect();
    // English originals needed: the English test's own pairs and those the
    // other languages are compared with.
    let mut english_ids: Vec<&str> = english_test
        .iter()
        .flat_map(|t| t.file.pairs.iter().map(|p| p.id.as_str()))
        .collect();
    for t in &others {
        english_ids.extend(
            t.file
                .pairs
                .iter()
                .map(|p| p.id.as_str())
                .filter(|id| english_by_id.contains_key(id)),
        );
    }
    english_ids.sort_unstable();
    english_ids.dedup();
    // Substitutions are drawn for every English original needed: the English
    // test's own pairs and the originals of every selected translation, so
    // consistency under substitution rests on all of a translation's shared
    // examples. Draws are seeded by id, so the English test's do not depend
    // on which translations are evaluated.
    let draws: HashMap<&str, Vec<(String, String)>> = perturbation.map_or_else(HashMap::new, |p| {
        english_ids
            .iter()
            .map(|&id| (id, draw_perturbations(english_by_id[id], p)))
            .collect()
    });

    let mut inputs: Vec<(&str, &str)> = Vec::new();
    fn pair_text(p: &LabelledPair) -> (&str, &str) {
        (p.sentence1.as_str(), p.sentence2.as_str())
    }
    inputs.extend(suite.dev.iter().flat_map(|f| f.pairs.iter().map(pair_text)));
    inputs.extend(
        suite
            .tests
            .iter()
            .flat_map(|t| t.file.pairs.iter().map(pair_text)),
    );
    inputs.extend(english_ids.iter().map(|id| pair_text(english_by_id[id])));
    for id in &english_ids {
        if let Some(list) = draws.get(id) {
            inputs.extend(list.iter().map(|(a, b)| (a.as_str(), b.as_str())));
        }
    }
    // Alignment compares each translation's sentences with their English
    // originals and substituted versions.
    let mut aligned: Vec<&str> = Vec::new();
    for t in &others {
        for pair in &t.file.pairs {
            let Some(english) = english_by_id.get(pair.id.as_str()) else {
                continue;
            };
            aligned.extend(
                [pair_text(pair), pair_text(english)]
                    .iter()
                    .flat_map(|&(a, b)| [a, b]),
            );
            for (a, b) in draws.get(pair.id.as_str()).into_iter().flatten() {
                aligned.extend([a.as_str(), b.as_str()]);
            }
        }
    }
    let started = std::time::Instant::now();
    let mut sequences = 0;
    let scored: Scored = scorer.score(&inputs, &aligned, |done, total| {
        sequences = total;
        progress(done, total)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let score = |p: &LabelledPair| scored.pair(&p.sentence1, &p.sentence2);

    let mut notes = Vec::new();
    let (decision, threshold, dev) = if similarity {
        let dev = suite.dev.as_ref().expect("checked above");
        let examples: Vec<(f32, bool)> = dev
            .pairs
            .iter()
            .map(|p| match score(p) {
                PairScore::Similarity(s) => (s, gold_of(dev, p) == 1),
                _ => unreachable!("a similarity scorer"),
            })
            .collect();
        let (t, _) = best_threshold(&examples);
        (Decision::Threshold(t), Some(t), Some(dev))
    } else {
        (Decision::Argmax, None, suite.dev.as_ref())
    };
    let predict = |p: &LabelledPair| decision.class(&score(p));
    let count = |file: &PairFile| {
        file.pairs
            .iter()
            .filter(|p| predict(p) == gold_of(file, p))
            .count()
    };
    let dev = dev.map(|f| {
        let name = f
            .path
            .file_name()
            .map_or("dev-en.tsv".into(), |n| n.to_string_lossy().into_owned());
        file_result(&name, ("en".into(), "en".into()), count(f), f.pairs.len())
    });
    let results: Vec<FileResult> = suite
        .tests
        .iter()
        .map(|t| {
            file_result(
                &t.name,
                t.languages.clone(),
                count(&t.file),
                t.file.pairs.len(),
            )
        })
        .collect();

    let english_accuracy = results
        .iter()
        .find(|r| r.languages == ("en".into(), "en".into()))
        .map(|r| r.accuracy);
    let languages: Vec<LanguageRow> = results
        .iter()
        .filter(|r| r.languages.0 == r.languages.1)
        .map(|r| LanguageRow {
            language: r.languages.0.clone(),
            pairs: r.pairs,
            accuracy: r.accuracy,
            interval: r.interval,
            gap_to_english: english_accuracy.map(|e| r.accuracy - e),
        })
        .collect();
    let matrix = matrix_of(suite, &results);
    let averages = Averages {
        languages: mean(languages.iter().map(|l| l.accuracy)).unwrap_or(0.0),
        languages_without_english: mean(
            languages
                .iter()
                .filter(|l| l.language != "en")
                .map(|l| l.accuracy),
        ),
        matrix: matrix
            .as_ref()
            .and_then(|m| mean(m.accuracy.iter().flatten().flatten().copied())),
        matrix_off_diagonal: matrix.as_ref().and_then(|m| {
            let n = m.languages.len();
            mean(
                (0..n * n)
                    .filter(|i| i / n != i % n)
                    .filter_map(|i| m.accuracy[i / n][i % n]),
            )
        }),
    };

    let robustness = match (perturbation, english_test) {
        (Some(p), Some(t)) => Some(robustness_of(t, p, &draws, &decision, &scored, |pair| {
            gold_of(&t.file, pair)
        })),
        _ => None,
    };
    if let Some(p) = perturbation {
        if english_test.is_none() {
            notes.push("--perturb: no test-en.tsv, so nothing was perturbed".into());
        }
        let skipped = suite
            .tests
            .iter()
            .filter(|t| t.name != "test-en.tsv")
            .count();
        if skipped > 0 {
            notes.push(format!(
                "synonym substitution uses English synonym sets ({}), so it was applied to \
                 test-en.tsv only; {skipped} other test files were left as they are",
                p.synonyms_origin
            ));
        }
    }
    let english_class = |id: &str| predict(english_by_id[id]);
    let english_gold = |p: &LabelledPair| match &suite.english {
        Some(file) => gold_of(file, p),
        None => unreachable!("English originals come from test-en.tsv"),
    };
    let english = EnglishSide {
        by_id: &english_by_id,
        draws: &draws,
        class: &english_class,
        gold: &english_gold,
    };
    // Each translation's retrieval, one entry a shared pair in file order,
    // computed once for its report row and for its pairs' records.
    let attack = perturbation.is_some_and(|p| p.worst_of_k);
    let retrieved: HashMap<&str, Retrieved> = others
        .iter()
        .map(|t| {
            let shared = shared_pairs(t, &english);
            let hits = retrieval(&scored, &shared, english.draws, attack);
            (t.name.as_str(), hits)
        })
        .collect();
    let consistency = others
        .iter()
        .filter_map(|t| {
            let hits = &retrieved[t.name.as_str()];
            consistency_of(t, &english, &scored, &decision, perturbation, hits)
        })
        .collect();
    if suite.english.is_none() && !others.is_empty() {
        notes.push("no test-en.tsv: cross-lingual consistency needs the English originals".into());
    }
    let pairs = pair_records(
        suite,
        &english,
        &scored,
        &decision,
        perturbation,
        &retrieved,
        &gold_of,
    );
    let smoothing = match scorer {
        Scorer::Model {
            smoothing: Some(settings),
            ..
        } if !similarity => {
            let files = suite.dev.iter().map(|f| {
                let name = f
                    .path
                    .file_name()
                    .map_or("dev-en.tsv".into(), |n| n.to_string_lossy().into_owned());
                (name, ("en".to_owned(), "en".to_owned()), f)
            });
            let tests = suite
                .tests
                .iter()
                .map(|t| (t.name.clone(), t.languages.clone(), &t.file));
            let files = files
                .chain(tests)
                .map(|(name, languages, file)| {
                    smoothed_file(name, languages, file, settings, &|p| score(p), &|p| {
                        gold_of(file, p)
                    })
                })
                .collect();
            Some(SmoothingReport {
                settings: settings.clone(),
                files,
            })
        }
        _ => None,
    };
    let decision_text = match (decision, scorer) {
        (
            Decision::Argmax,
            Scorer::Model {
                smoothing: Some(s), ..
            },
        ) => format!(
            "majority vote over {} draws of {} noise (sigma {}) on the word embeddings; \
             abstains unless the top class's votes beat the runner-up's at p <= {} \
             (an abstention counts as wrong)",
            s.draws,
            match s.law {
                crate::train::method::Law::Gaussian => "Gaussian",
                crate::train::method::Law::Uniform => "uniform",
            },
            s.sigma,
            s.alpha
        ),
        (Decision::Argmax, _) => "argmax over the model's labels".to_owned(),
        (Decision::Threshold(t), Scorer::WordOverlap) => {
            format!("word overlap (Jaccard) >= {t:.4} means label 1, tuned on dev-en")
        }
        (Decision::Threshold(t), _) => {
            format!("cosine of the sentence embeddings >= {t:.4} means label 1, tuned on dev-en")
        }
    };
    Ok(Evaluation {
        decision: decision_text,
        threshold,
        dev,
        files: results,
        languages,
        averages,
        matrix,
        robustness,
        consistency,
        smoothing,
        pairs,
        notes,
        sequences,
        seconds,
    })
}

/// Every test pair's record: its prediction; on the English test, its
/// classes under substitution; on a translation, its English original's
/// class and alignment, clean and attacked.
fn pair_records(
    suite: &Suite,
    english: &EnglishSide,
    scored: &Scored,
    decision: &Decision,
    perturbation: Option<&Perturbation>,
    retrieved: &HashMap<&str, Retrieved>,
    gold: &dyn Fn(&PairFile, &LabelledPair) -> usize,
) -> Vec<PairRecord> {
    let class = |a: &str, b: &str| decision.class(&scored.pair(a, b));
    let attack = perturbation.is_some_and(|p| p.worst_of_k);
    // The English original's draw of highest loss against its gold class.
    let worst_of = |e: &LabelledPair, gold: usize| -> Option<&(String, String)> {
        let list = english.draws.get(e.id.as_str()).filter(|_| attack)?;
        worst_draw(list, decision, scored, gold).map(|i| &list[i])
    };
    let mut records = Vec::new();
    for t in &suite.tests {
        let is_english = t.name == "test-en.tsv";
        let is_translation = t.is_monolingual() && t.languages.0 != "en";
        let retrieved: HashMap<&str, (Option<u8>, Option<u8>)> = if is_translation {
            let shared = shared_pairs(t, english);
            let ids = shared.iter().map(|(_, p)| p.id.as_str());
            ids.zip(retrieved[t.name.as_str()].iter().copied())
                .collect()
        } else {
            HashMap::new()
        };
        for pair in &t.file.pairs {
            let gold = gold(&t.file, pair);
            let mut record = PairRecord {
                file: t.name.clone(),
                id: pair.id.clone(),
                gold,
                predicted: class(&pair.sentence1, &pair.sentence2),
                substituted: Vec::new(),
                worst: None,
                english: None,
                english_attacked: None,
                alignment: None,
                alignment_attacked: None,
                alignment_worst: None,
                retrieved: None,
                retrieved_worst: None,
            };
            if is_english {
                if let Some(list) = english.draws.get(pair.id.as_str()) {
                    record.substituted = list.iter().map(|(a, b)| class(a, b)).collect();
                }
                record.worst = worst_of(pair, gold).map(|(a, b)| class(a, b));
            }
            if let Some(e) = english
                .by_id
                .get(pair.id.as_str())
                .filter(|_| is_translation)
            {
                record.english = Some((english.class)(&e.id));
                record.alignment = pair_cosines(scored, (&e.sentence1, &e.sentence2), pair)
                    .and_then(|c| mean(c.into_iter()));
                if let Some((a, b)) = worst_of(e, (english.gold)(e)) {
                    record.english_attacked = Some(class(a, b));
                    record.alignment_attacked =
                        pair_cosines(scored, (a, b), pair).and_then(|c| mean(c.into_iter()));
                    record.alignment_worst =
                        lowest_alignment(scored, &english.draws[e.id.as_str()], pair);
                }
                (record.retrieved, record.retrieved_worst) = retrieved[pair.id.as_str()];
            }
            records.push(record);
        }
    }
    records
}

/// A file's abstentions and, when certified, its certified accuracy at
/// each of [`certified_radii`].
fn smoothed_file(
    file: String,
    languages: (String, String),
    pairs: &PairFile,
    settings: &smoothing::Smoothing,
    score: &dyn Fn(&LabelledPair) -> PairScore,
    gold: &dyn Fn(&LabelledPair) -> usize,
) -> SmoothedFile {
    let smoothed: Vec<(smoothing::Smoothed, usize, &str)> = pairs
        .pairs
        .iter()
        .filter_map(|p| match score(p) {
            PairScore::Smoothed(s) => Some((s, gold(p), p.id.as_str())),
            _ => None,
        })
        .collect();
    let n = smoothed.len().max(1) as f64;
    let certified = if settings.certify {
        certified_radii(settings.sigma)
            .into_iter()
            .map(|r| {
                let count = smoothed
                    .iter()
                    .filter(|(s, gold, _)| {
                        s.certified
                            .is_some_and(|(class, radius)| class == *gold && radius >= r)
                    })
                    .count();
                (r, count as f64 / n)
            })
            .collect()
    } else {
        Vec::new()
    };
    SmoothedFile {
        file,
        languages,
        pairs: smoothed.len(),
        abstained: smoothed
            .iter()
            .filter(|(s, _, _)| s.class.is_none())
            .count(),
        certified,
        predictions: smoothed
            .iter()
            .map(|(s, gold, id)| SmoothedPrediction {
                id: (*id).to_owned(),
                gold: *gold,
                votes: s.votes.clone(),
                predicted: s.class,
                certified: s.certified,
            })
            .collect(),
    }
}

fn matrix_of(suite: &Suite, results: &[FileResult]) -> Option<Matrix> {
    if !suite.tests.iter().any(|t| !t.is_monolingual()) {
        return None;
    }
    let mut languages = suite.languages();
    for t in &suite.tests {
        for l in [&t.languages.0, &t.languages.1] {
            if !languages.contains(l) {
                languages.push(l.clone());
            }
        }
    }
    let accuracy = languages
        .iter()
        .map(|a| {
            languages
                .iter()
                .map(|b| {
                    results
                        .iter()
                        .find(|r| r.languages.0 == *a && r.languages.1 == *b)
                        .map(|r| r.accuracy)
                })
                .collect()
        })
        .collect();
    Some(Matrix {
        languages,
        accuracy,
    })
}

/// The draw the worst-of-K attack keeps: the one of highest loss against
/// `gold` (the first of equals).
fn worst_draw(
    draws: &[(String, String)],
    decision: &Decision,
    scored: &Scored,
    gold: usize,
) -> Option<usize> {
    let losses: Vec<f64> = draws
        .iter()
        .map(|(a, b)| decision.loss(&scored.pair(a, b), gold))
        .collect();
    (0..draws.len()).max_by(|&i, &j| losses[i].total_cmp(&losses[j]).then(j.cmp(&i)))
}

fn robustness_of(
    test: &suite::TestFile,
    p: &Perturbation,
    draws: &HashMap<&str, Vec<(String, String)>>,
    decision: &Decision,
    scored: &Scored,
    gold: impl Fn(&LabelledPair) -> usize,
) -> Robustness {
    let (mut clean_correct, mut draw_correct, mut unchanged, mut worst_correct) = (0, 0, 0, 0);
    let (mut replaced, mut words) = (0usize, 0usize);
    for pair in &test.file.pairs {
        let gold = gold(pair);
        let clean = decision.class(&scored.pair(&pair.sentence1, &pair.sentence2));
        clean_correct += usize::from(clean == gold);
        let mut all_same = true;
        let list = &draws[pair.id.as_str()];
        for (a, b) in list {
            let class = decision.class(&scored.pair(a, b));
            draw_correct += usize::from(class == gold);
            all_same &= class == clean;
            for (original, drawn) in [(&pair.sentence1, a), (&pair.sentence2, b)] {
                words += original.split(' ').count();
                replaced += original
                    .split(' ')
                    .zip(drawn.split(' '))
                    .filter(|(x, y)| x != y)
                    .count();
            }
        }
        unchanged += usize::from(all_same);
        let worst = worst_draw(list, decision, scored, gold);
        worst_correct += usize::from(worst.is_some_and(|i| {
            let (a, b) = &list[i];
            decision.class(&scored.pair(a, b)) == gold
        }));
    }
    let n = test.file.pairs.len().max(1) as f64;
    Robustness {
        file: test.name.clone(),
        pairs: test.file.pairs.len(),
        draws: p.draws,
        seed: p.seed,
        synonyms: p.synonyms_origin.clone(),
        clean_accuracy: clean_correct as f64 / n,
        perturbed_accuracy: draw_correct as f64 / (n * p.draws.max(1) as f64),
        unchanged: unchanged as f64 / n,
        worst_of_k_accuracy: p.worst_of_k.then(|| worst_correct as f64 / n),
        words_replaced: replaced as f64 / words.max(1) as f64,
    }
}

/// What a translation is compared with: the English originals by id, their
/// substituted versions, the prediction on an original and its gold class.
struct EnglishSide<'a> {
    by_id: &'a HashMap<&'a str, &'a LabelledPair>,
    draws: &'a HashMap<&'a str, Vec<(String, String)>>,
    class: &'a dyn Fn(&str) -> usize,
    gold: &'a dyn Fn(&LabelledPair) -> usize,
}

fn consistency_of(
    test: &suite::TestFile,
    english: &EnglishSide,
    scored: &Scored,
    decision: &Decision,
    perturbation: Option<&Perturbation>,
    hits: &Retrieved,
) -> Option<Consistency> {
    let shared = shared_pairs(test, english);
    if shared.is_empty() {
        return None;
    }
    let class = |a: &str, b: &str| decision.class(&scored.pair(a, b));
    let agreement = mean(shared.iter().map(|(e, t)| {
        f64::from(u8::from(
            (english.class)(&e.id) == class(&t.sentence1, &t.sentence2),
        ))
    }))?;
    let clean = |e: &LabelledPair| vec![(e.sentence1.clone(), e.sentence2.clone())];
    let mut result = Consistency {
        language: test.languages.0.clone(),
        shared_pairs: shared.len(),
        agreement,
        alignment: alignment(scored, &shared, &clean),
        perturbed_pairs: None,
        perturbed_agreement: None,
        perturbed_alignment: None,
        attacked_agreement: None,
        attacked_alignment: None,
        worst_alignment: None,
        retrieval: None,
        worst_retrieval: None,
    };
    let share = |found: Option<Vec<u8>>| mean(found?.into_iter().map(|n| f64::from(n) / 2.0));
    result.retrieval = share(hits.iter().map(|h| h.0).collect());
    result.worst_retrieval = share(hits.iter().map(|h| h.1).collect());
    let Some(p) = perturbation else {
        return Some(result);
    };
    // Every shared example's English original has its draws.
    result.perturbed_pairs = Some(shared.len());
    let random = |e: &LabelledPair| english.draws[e.id.as_str()].clone();
    result.perturbed_agreement = mean(shared.iter().flat_map(|(e, t)| {
        let translated = class(&t.sentence1, &t.sentence2);
        english.draws[e.id.as_str()]
            .iter()
            .map(move |(a, b)| f64::from(u8::from(class(a, b) == translated)))
    }));
    result.perturbed_alignment = alignment(scored, &shared, &random);
    if p.worst_of_k {
        // The English draw the attack keeps: highest loss against the English gold label.
        let worst = |e: &LabelledPair| -> Vec<(String, String)> {
            let list = &english.draws[e.id.as_str()];
            worst_draw(list, decision, scored, (english.gold)(e))
                .map(|i| list[i].clone())
                .into_iter()
                .collect()
        };
        result.attacked_agreement = mean(shared.iter().flat_map(|(e, t)| {
            let translated = class(&t.sentence1, &t.sentence2);
            worst(e)
                .into_iter()
                .map(move |(a, b)| f64::from(u8::from(class(&a, &b) == translated)))
        }));
        result.attacked_alignment = alignment(scored, &shared, &worst);
        result.worst_alignment = shared
            .iter()
            .map(|(e, t)| lowest_alignment(scored, &english.draws[e.id.as_str()], t))
            .collect::<Option<Vec<f64>>>()
            .and_then(|lowest| mean(lowest.into_iter()));
    }
    Some(result)
}

/// A translated file's examples whose English original is known, with it.
fn shared_pairs<'a>(
    test: &'a suite::TestFile,
    english: &EnglishSide<'a>,
) -> Vec<(&'a LabelledPair, &'a LabelledPair)> {
    test.file
        .pairs
        .iter()
        .filter_map(|p| english.by_id.get(p.id.as_str()).map(|e| (*e, p)))
        .collect()
}

/// A translation's [`retrieval`]: one (clean, worst draw) entry a shared
/// example, in file order.
type Retrieved = Vec<(Option<u8>, Option<u8>)>;

/// For each shared (English original, translation) example, in order: of
/// its two sentences, how many the English original's retrieves
/// ([`Consistency::retrieval`]), clean and (with `attack`, where the
/// original has draws) on its draw of lowest alignment; None without
/// sentence embeddings.
fn retrieval(
    scored: &Scored,
    shared: &[(&LabelledPair, &LabelledPair)],
    draws: &HashMap<&str, Vec<(String, String)>>,
    attack: bool,
) -> Retrieved {
    let firsts: Vec<&str> = shared.iter().map(|(_, t)| t.sentence1.as_str()).collect();
    let seconds: Vec<&str> = shared.iter().map(|(_, t)| t.sentence2.as_str()).collect();
    let embedding = |s: &str| scored.embedding(s);
    let found = |english: (&str, &str), own: usize| -> Option<u8> {
        let first = retrieves(&embedding, english.0, &firsts, own)?;
        let second = retrieves(&embedding, english.1, &seconds, own)?;
        Some(u8::from(first) + u8::from(second))
    };
    shared
        .iter()
        .enumerate()
        .map(|(i, (e, t))| {
            let clean = found((&e.sentence1, &e.sentence2), i);
            let worst = draws
                .get(e.id.as_str())
                .filter(|_| attack)
                .and_then(|list| lowest_draw(scored, list, t))
                .and_then(|(a, b)| found((a, b), i));
            (clean, worst)
        })
        .collect()
}

/// Whether `query`'s embedding is nearer `candidates[own]`'s than every
/// other candidate's of a different text (a repeat of its own text is no
/// rival; a tie is a miss); None when an embedding is missing.
fn retrieves<'a>(
    embedding: &impl Fn(&str) -> Option<&'a [f32]>,
    query: &str,
    candidates: &[&str],
    own: usize,
) -> Option<bool> {
    let query = embedding(query)?;
    let own_score = cosine(query, embedding(candidates[own])?);
    for &other in candidates {
        if other != candidates[own] && cosine(query, embedding(other)?) >= own_score {
            return Some(false);
        }
    }
    Some(true)
}

/// Mean cosine between the embeddings of the English sentences `english`
/// gives for each shared example (its original, or substituted versions) and
/// of their translations; None for a model without sentence embeddings.
fn alignment(
    scored: &Scored,
    shared: &[(&LabelledPair, &LabelledPair)],
    english: &dyn Fn(&LabelledPair) -> Vec<(String, String)>,
) -> Option<f64> {
    let mut values = Vec::new();
    for (e, t) in shared {
        for (e1, e2) in english(e) {
            values.extend(pair_cosines(scored, (&e1, &e2), t)?);
        }
    }
    mean(values.into_iter())
}

/// The lowest alignment of a translation with any of its English original's
/// draws (each draw's two cosines averaged); None without sentence
/// embeddings or draws.
fn lowest_alignment(scored: &Scored, draws: &[(String, String)], t: &LabelledPair) -> Option<f64> {
    let (a, b) = lowest_draw(scored, draws, t)?;
    pair_cosines(scored, (a, b), t).and_then(|c| mean(c.into_iter()))
}

/// The draw of lowest alignment with a translation (the first on a tie);
/// None without sentence embeddings or draws.
fn lowest_draw<'d>(
    scored: &Scored,
    draws: &'d [(String, String)],
    t: &LabelledPair,
) -> Option<(&'d str, &'d str)> {
    let values = draws
        .iter()
        .map(|(a, b)| pair_cosines(scored, (a, b), t).and_then(|c| mean(c.into_iter())))
        .collect::<Option<Vec<f64>>>()?;
    let lowest = values.iter().copied().min_by(f64::total_cmp)?;
    let i = values.iter().position(|&v| v == lowest)?;
    Some((draws[i].0.as_str(), draws[i].1.as_str()))
}

/// The cosines of an English pair's sentences with a translation's, first
/// with first and second with second; None without sentence embeddings.
fn pair_cosines(scored: &Scored, english: (&str, &str), t: &LabelledPair) -> Option<[f64; 2]> {
    let align = |a: &str, b: &str| -> Option<f64> {
        Some(cosine(scored.embedding(a)?, scored.embedding(b)?) as f64)
    };
    Some([
        align(english.0, &t.sentence1)?,
        align(english.1, &t.sentence2)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::retrieves;
    use std::collections::HashMap;

    /// Retrieval by hand: a query nearest its own candidate is found; one
    /// nearer another is not; a repeat of its own text is no rival; a tie
    /// with another text is a miss; a missing embedding gives None.
    #[test]
    fn retrieval_by_hand() {
        let vectors: HashMap<&str, Vec<f32>> = HashMap::from([
            ("q", vec![1.0, 0.0]),
            ("own", vec![0.8, 0.6]),
            ("far", vec![0.0, 1.0]),
            ("near", vec![1.0, 0.1]),
            ("twin", vec![0.8, 0.6]),
        ]);
        let embedding = |s: &str| vectors.get(s).map(|v| &v[..]);
        assert_eq!(retrieves(&embedding, "q", &["far", "own"], 1), Some(true));
        assert_eq!(retrieves(&embedding, "q", &["own", "near"], 0), Some(false));
        assert_eq!(
            retrieves(&embedding, "q", &["own", "far", "own"], 0),
            Some(true)
        );
        assert_eq!(retrieves(&embedding, "q", &["own", "twin"], 0), Some(false));
        assert_eq!(retrieves(&embedding, "q", &["own", "missing"], 0), None);
        assert_eq!(retrieves(&embedding, "missing", &["own"], 0), None);
    }
}
