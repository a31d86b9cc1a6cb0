//! RS-DA's training data (PAPER.md, method 3): every training pair becomes
//! `copies` perturbed copies, both sentences substituted independently by
//! the synonym rule, the label kept, the original not kept; the copies are
//! drawn once, before training, from a recorded seed. Variants beyond the
//! paper (each off unless asked for): the looser case-insensitive rule, a
//! fresh draw every epoch, and keeping each original beside its copies.

use std::collections::HashMap;

use xltc_runtime::{SplitMix64, SynonymSets};

use super::method::Augmentation;

/// A labelled training pair: sentence 1, sentence 2, class, and where it
/// comes from (file and line, for errors).
pub type Row = (String, String, u32, String);

/// The training set of `epoch` for `rows`: the same set every epoch unless
/// `settings.every_epoch`, when each epoch draws its own.
pub fn augment(
    rows: &[Row],
    settings: &Augmentation,
    sets: &SynonymSets,
    epoch: usize,
) -> Vec<Row> {
    let draw = if settings.every_epoch { epoch } else { 0 };
    let mut rng =
        SplitMix64::new(settings.seed ^ (draw as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let perturb = |s: &str, rng: &mut SplitMix64| {
        if settings.ignore_case {
            sets.perturb_ignoring_case(s, rng)
        } else {
            sets.perturb(s, rng)
        }
    };
    let per_row = settings.copies + usize::from(settings.keep_original);
    let mut out = Vec::with_capacity(rows.len() * per_row);
    for (a, b, label, origin) in rows {
        if settings.keep_original {
            out.push((a.clone(), b.clone(), *label, origin.clone()));
        }
        for copy in 1..=settings.copies {
            let (a, b) = (perturb(a, &mut rng), perturb(b, &mut rng));
            out.push((a, b, *label, format!("{origin} (copy {copy})")));
        }
    }
    out
}

/// Code-switching from parallel data: each sentence of `rows` that
/// `translations` holds (an English text -> its translations) is replaced,
/// with chance `p`, by a uniform draw among them; drawn once, from `seed`.
/// The label stays, so the pair stays an English training example whose
/// sentences may now be in another language (no labelled example of
/// another language is used).
pub fn code_switch(
    rows: &[Row],
    translations: &HashMap<String, Vec<String>>,
    p: f64,
    seed: u64,
) -> Vec<Row> {
    let mut rng = SplitMix64::new(seed ^ 0xC0DE_5EED);
    let mut switch = |sentence: &str| match translations.get(sentence) {
        Some(options) if !options.is_empty() && rng.next_f64() < p => {
            options[rng.below(options.len())].clone()
        }
        _ => sentence.to_owned(),
    };
    rows.iter()
        .map(|(a, b, label, origin)| (switch(a), switch(b), *label, origin.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> SynonymSets {
        SynonymSets::from_json("t", r#"{"movie": ["film", "cinema"], "good": ["fine"]}"#).unwrap()
    }

    fn settings() -> Augmentation {
        Augmentation {
            synonyms: None,
            copies: 3,
            seed: 5,
            ignore_case: false,
            every_epoch: false,
            keep_original: false,
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            (
                "a good movie".into(),
                "Movie good.".into(),
                1,
                "f line 1".into(),
            ),
            ("nothing here".into(), "movie".into(), 0, "f line 2".into()),
        ]
    }

    #[test]
    fn each_pair_becomes_its_copies_with_its_label() {
        let out = augment(&rows(), &settings(), &sets(), 0);
        assert_eq!(out.len(), 6);
        for (i, (a, b, label, origin)) in out.iter().enumerate() {
            let (ra, rb, rl, _) = &rows()[i / 3];
            assert_eq!(label, rl);
            assert_eq!(a.split(' ').count(), ra.split(' ').count());
            assert_eq!(b.split(' ').count(), rb.split(' ').count());
            assert!(
                origin.ends_with(&format!("(copy {})", i % 3 + 1)),
                "{origin}"
            );
            if i < 3 {
                assert!(b.starts_with("Movie ") && b.ends_with(" good."), "{b}");
            } else {
                assert_eq!(a, "nothing here");
            }
        }
    }

    #[test]
    fn drawn_once_unless_every_epoch_and_reproducible() {
        let (sets, once) = (sets(), settings());
        let many: Vec<Row> = (0..40)
            .map(|i| ("movie good movie".into(), "good".into(), 0, format!("{i}")))
            .collect();
        let first = augment(&many, &once, &sets, 0);
        assert_eq!(first, augment(&many, &once, &sets, 2), "drawn once");
        let fresh = Augmentation {
            every_epoch: true,
            ..once.clone()
        };
        assert_eq!(first, augment(&many, &fresh, &sets, 0));
        assert_ne!(
            first,
            augment(&many, &fresh, &sets, 1),
            "a new draw each epoch"
        );
        let other_seed = Augmentation { seed: 6, ..once };
        assert_ne!(first, augment(&many, &other_seed, &sets, 0));
    }

    #[test]
    fn code_switching_replaces_sentences_with_a_translation_at_its_rate() {
        let translations: HashMap<String, Vec<String>> = [
            (
                "a good movie".to_owned(),
                vec!["ein guter Film".to_owned(), "un bon film".to_owned()],
            ),
            ("movie".to_owned(), vec!["Film".to_owned()]),
        ]
        .into_iter()
        .collect();
        let many: Vec<Row> = (0..4000).map(|_| rows()[0].clone()).collect();
        let out = code_switch(&many, &translations, 0.3, 1);
        let switched = out.iter().filter(|r| r.0 != "a good movie").count();
        // 1,200 expected, standard deviation about 29.
        assert!((1_100..1_300).contains(&switched), "{switched}");
        let german = out.iter().filter(|r| r.0 == "ein guter Film").count();
        assert!(
            (german as f64 / switched as f64 - 0.5).abs() < 0.06,
            "{german} of {switched}"
        );
        // No translation of "Movie good.": it never changes; the label stays.
        assert!(out.iter().all(|r| r.1 == "Movie good." && r.2 == 1));
        assert_eq!(out, code_switch(&many, &translations, 0.3, 1));
        assert!(code_switch(&many, &translations, 0.0, 1) == many);
    }

    #[test]
    fn keeping_the_original_puts_it_before_its_copies() {
        let keep = Augmentation {
            keep_original: true,
            ..settings()
        };
        let out = augment(&rows(), &keep, &sets(), 0);
        assert_eq!(out.len(), 8);
        assert_eq!(out[0], rows()[0]);
        assert_eq!(out[4], rows()[1]);
    }
}
