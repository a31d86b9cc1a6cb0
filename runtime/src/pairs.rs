//! Sentence-pair task files, as PAWS-X and XNLI are published: XTREME's three
//! columns (sentence1, sentence2, label; no header), or the original PAWS-X
//! layout with the header `id sentence1 sentence2 label`. Files of the same
//! task in several languages share example ids, which is how a translation is
//! matched to its English original.

use std::path::{Path, PathBuf};

/// The header that marks the original PAWS-X layout.
pub const PAWSX_HEADER: [&str; 4] = ["id", "sentence1", "sentence2", "label"];

/// One labelled example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledPair {
    /// The example id: the file's own, or the row number (from 0) for
    /// three-column files, whose rows are aligned across languages.
    pub id: String,
    pub sentence1: String,
    pub sentence2: String,
    /// The label as written in the file ("0", "1", "entailment", ...).
    pub label: String,
    /// The line in the file (from 1), for messages.
    pub line: usize,
}

/// The class a label string names among `labels`: by name, else by number
/// (PAWS-X's "0" and "1" for a model whose labels are LABEL_0, LABEL_1).
pub fn label_index(labels: &[String], label: &str) -> Option<usize> {
    labels
        .iter()
        .position(|l| l == label)
        .or_else(|| label.parse::<usize>().ok().filter(|&i| i < labels.len()))
}

#[derive(Clone, Debug)]
pub struct PairFile {
    pub path: PathBuf,
    pub pairs: Vec<LabelledPair>,
}

#[derive(Debug, thiserror::Error)]
pub enum PairFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line}: expected {expected} tab-separated columns ({layout}), found {found}"
    )]
    Columns {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
        layout: &'static str,
    },
    #[error("{path} line {line}: {what} is empty")]
    EmptyField {
        path: PathBuf,
        line: usize,
        what: &'static str,
    },
    #[error("{path} line {line}: example id {id} was already used on line {first}")]
    DuplicateId {
        path: PathBuf,
        line: usize,
        id: String,
        first: usize,
    },
    #[error("{path}: no examples (the file is empty or holds only a header)")]
    Empty { path: PathBuf },
}

impl PairFile {
    pub fn read(path: &Path) -> Result<Self, PairFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PairFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a pair file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PairFileError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
            .filter(|(_, l)| !l.is_empty())
            .peekable();
        let with_ids = lines
            .peek()
            .is_some_and(|(_, l)| l.split('\t').eq(PAWSX_HEADER));
        if with_ids {
            lines.next();
        }
        let (expected, layout) = if with_ids {
            (4, "id, sentence1, sentence2, label, as the header says")
        } else {
            (3, "sentence1, sentence2, label")
        };
        let mut pairs = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (line, content) in lines {
            let fields: Vec<&str> = content.split('\t').collect();
            if fields.len() != expected {
                return Err(PairFileError::Columns {
                    path: path.to_owned(),
                    line,
                    expected,
                    found: fields.len(),
                    layout,
                });
            }
            let offset = expected - 3;
            let id = if with_ids {
                fields[0].to_owned()
            } else {
                pairs.len().to_string()
            };
            let empty = |what| PairFileError::EmptyField {
                path: path.to_owned(),
                line,
                what,
            };
            for (what, field) in ["sentence1", "sentence2", "the label"]
                .into_iter()
                .zip(&fields[offset..])
            {
                if field.trim().is_empty() {
                    return Err(empty(what));
                }
            }
            if with_ids && id.trim().is_empty() {
                return Err(empty("the id"));
            }
            if let Some(first) = seen.insert(id.clone(), line) {
                return Err(PairFileError::DuplicateId {
                    path: path.to_owned(),
                    line,
                    id,
                    first,
                });
            }
            pairs.push(LabelledPair {
                id,
                sentence1: fields[offset].to_owned(),
                sentence2: fields[offset + 1].to_owned(),
                label: fields[offset + 2].trim().to_owned(),
                line,
            });
        }
        if pairs.is_empty() {
            return Err(PairFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            pairs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_are_read_and_three_columns_number_their_rows() {
        let path = Path::new("x.tsv");
        let pawsx = PairFile::parse(path, "id\tsentence1\tsentence2\tlabel\n7\ta\tb\t1\n").unwrap();
        assert_eq!(pawsx.pairs[0].id, "7");
        assert_eq!(pawsx.pairs[0].line, 2);
        let xtreme = PairFile::parse(path, "a\tb\tneutral\r\nc\td\tentailment\n\n").unwrap();
        assert_eq!(xtreme.pairs.len(), 2);
        assert_eq!(xtreme.pairs[1].id, "1");
        assert_eq!(xtreme.pairs[1].label, "entailment");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        let path = Path::new("dev.tsv");
        let err = PairFile::parse(path, "a\tb\t1\nc\td\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dev.tsv line 2: expected 3 tab-separated columns (sentence1, sentence2, label), found 2"
        );
        let err = PairFile::parse(path, "a\t \t1\n").unwrap_err();
        assert_eq!(err.to_string(), "dev.tsv line 1: sentence2 is empty");
        let err = PairFile::parse(path, "id\tsentence1\tsentence2\tlabel\n").unwrap_err();
        assert!(matches!(err, PairFileError::Empty { .. }));
        let twice = "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t0\n1\tc\td\t1\n";
        let err = PairFile::parse(path, twice).unwrap_err();
        assert!(err.to_string().contains("line 3: example id 1"), "{err}");
    }
}
