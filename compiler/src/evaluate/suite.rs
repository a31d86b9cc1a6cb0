//! The files of a zero-shot evaluation, in the XTREME / Robust-XLT layout:
//! `dev-en.tsv` (English development data, the only data any threshold or
//! choice may see), `test-{L}.tsv` per language, and `test-{A}-{B}.tsv` for
//! the generalized setting (sentence 1 in language A, sentence 2 in B).

use std::path::{Path, PathBuf};

use xltc_runtime::{PairFile, PairFileError};

/// One test file and the languages of its two sentences.
#[derive(Clone, Debug)]
pub struct TestFile {
    /// The file name, as reports show it ("test-de.tsv").
    pub name: String,
    /// (language of sentence 1, language of sentence 2); equal for test-{L}.
    pub languages: (String, String),
    pub file: PairFile,
}

impl TestFile {
    pub fn is_monolingual(&self) -> bool {
        self.languages.0 == self.languages.1
    }
}

#[derive(Clone, Debug)]
pub struct Suite {
    pub folder: PathBuf,
    pub dev: Option<PairFile>,
    pub tests: Vec<TestFile>,
    /// All of test-en.tsv, whatever --max-pairs keeps: the English originals
    /// that translations are compared with, by example id.
    pub english: Option<PairFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot list {folder}: {source}")]
    List {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{folder}: no test files (test-{{L}}.tsv or test-{{A}}-{{B}}.tsv){filter}; \
         this is the XTREME layout eval reads"
    )]
    NoTests { folder: PathBuf, filter: String },
    #[error("--langs {language}: {folder} has no test-{language}.tsv")]
    UnknownLanguage { folder: PathBuf, language: String },
    #[error(transparent)]
    File(#[from] PairFileError),
}

/// What to take from a folder.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Languages to keep besides English (all when empty).
    pub languages: Vec<String>,
    /// Also the cross-language files test-{A}-{B}.tsv.
    pub matrix: bool,
    /// At most this many pairs a file: those with the smallest ids, so every
    /// run (and every language) takes the same examples.
    pub max_pairs: Option<usize>,
}

/// The two languages a test file name stands for, or None for other files.
pub fn test_file_languages(name: &str) -> Option<(String, String)> {
    let stem = name.strip_prefix("test-")?.strip_suffix(".tsv")?;
    let valid = |code: &str| {
        !code.is_empty()
            && code.len() <= 8
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match stem.split('-').collect::<Vec<_>>()[..] {
        [one] if valid(one) => Some((one.to_owned(), one.to_owned())),
        [a, b] if valid(a) && valid(b) => Some((a.to_owned(), b.to_owned())),
        _ => None,
    }
}

impl Suite {
    pub fn discover(folder: &Path, selection: &Selection) -> Result<Suite, SuiteError> {
        let entries = std::fs::read_dir(folder).map_err(|source| SuiteError::List {
            folder: folder.to_owned(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let wanted = |lang: &str| {
            lang == "en"
                || selection.languages.is_empty()
                || selection.languages.iter().any(|l| l == lang)
        };
        let mut tests = Vec::new();
        let mut english = None;
        for name in names {
            let Some(languages) = test_file_languages(&name) else {
                continue;
            };
            let cross = languages.0 != languages.1;
            if (cross && !selection.matrix) || !wanted(&languages.0) || !wanted(&languages.1) {
                continue;
            }
            let whole = PairFile::read(&folder.join(&name))?;
            if name == "test-en.tsv" {
                english = Some(whole.clone());
            }
            let file = select(whole, selection.max_pairs);
            tests.push(TestFile {
                name,
                languages,
                file,
            });
        }
        let missing = selection.languages.iter().find(|l| {
            !tests
                .iter()
                .any(|t| t.languages.0 == **l || t.languages.1 == **l)
        });
        if let Some(language) = missing {
            return Err(SuiteError::UnknownLanguage {
                folder: folder.to_owned(),
                language: language.to_string(),
            });
        }
        if tests.is_empty() {
            let filter = if selection.languages.is_empty() {
                String::new()
            } else {
                format!(" for en, {}", selection.languages.join(", "))
            };
            return Err(SuiteError::NoTests {
                folder: folder.to_owned(),
                filter,
            });
        }
        // English first, then the other monolingual files, then the matrix.
        tests.sort_by_key(|t| (!t.is_monolingual(), t.languages.0 != "en", t.name.clone()));
        if selection.max_pairs.is_some() {
            keep_selected_examples_in_cells(&mut tests);
        }
        let dev_path = folder.join("dev-en.tsv");
        let dev = if dev_path.is_file() {
            Some(select(PairFile::read(&dev_path)?, selection.max_pairs))
        } else {
            None
        };
        Ok(Suite {
            folder: folder.to_owned(),
            dev,
            tests,
            english,
        })
    }

    /// Every language that has a monolingual test file, English first.
    pub fn languages(&self) -> Vec<String> {
        self.tests
            .iter()
            .filter(|t| t.is_monolingual())
            .map(|t| t.languages.0.clone())
            .collect()
    }
}

/// Under --max-pairs, a cross-language file keeps only examples that both of
/// its languages' own files kept: every sentence it reads is then one the
/// monolingual files read too, and the matrix compares like with like.
fn keep_selected_examples_in_cells(tests: &mut [TestFile]) {
    let kept: std::collections::HashMap<String, std::collections::HashSet<String>> = tests
        .iter()
        .filter(|t| t.is_monolingual())
        .map(|t| {
            let ids = t.file.pairs.iter().map(|p| p.id.clone()).collect();
            (t.languages.0.clone(), ids)
        })
        .collect();
    for test in tests.iter_mut().filter(|t| !t.is_monolingual()) {
        let (a, b) = (kept.get(&test.languages.0), kept.get(&test.languages.1));
        if let (Some(a), Some(b)) = (a, b) {
            test.file
                .pairs
                .retain(|p| a.contains(&p.id) && b.contains(&p.id));
        }
    }
}

/// Keeps the `max_pairs` pairs with the smallest ids (numerically where the
/// ids are numbers), in file order.
fn select(mut file: PairFile, max_pairs: Option<usize>) -> PairFile {
    let Some(max) = max_pairs else { return file };
    if file.pairs.len() <= max {
        return file;
    }
    let key = |id: &str| (id.parse::<u64>().unwrap_or(u64::MAX), id.to_owned());
    let mut order: Vec<usize> = (0..file.pairs.len()).collect();
    order.sort_by_key(|&i| key(&file.pairs[i].id));
    let mut keep = vec![false; file.pairs.len()];
    for &i in &order[..max] {
        keep[i] = true;
    }
    let mut index = 0;
    file.pairs.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_the_languages() {
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(test_file_languages("test-de.tsv"), pair("de", "de"));
        assert_eq!(test_file_languages("test-en-zh.tsv"), pair("en", "zh"));
        assert_eq!(
            test_file_languages("test-zh_CN.tsv"),
            pair("zh_CN", "zh_CN")
        );
        assert_eq!(test_file_languages("dev-en.tsv"), None);
        assert_eq!(test_file_languages("test-a-b-c.tsv"), None);
        assert_eq!(test_file_languages("test-.tsv"), None);
    }

    #[test]
    fn max_pairs_keeps_the_smallest_ids_in_file_order() {
        let text =
            "id\tsentence1\tsentence2\tlabel\n9\ta\tb\t0\n2\tc\td\t1\n10\te\tf\t1\n1\tg\th\t0\n";
        let file = PairFile::parse(Path::new("t.tsv"), text).unwrap();
        let kept = select(file, Some(2));
        let ids: Vec<&str> = kept.pairs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["2", "1"]);
    }
}
