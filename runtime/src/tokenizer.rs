//! Text to token ids with a Hugging Face `tokenizer.json`, single sentences and
//! pairs, with the model's special tokens and longest-first truncation.

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// What to do with a text (or pair) that has more tokens than the maximum length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse it with [`TokenizerError::TooLong`].
    Error,
    /// Cut tokens from the longer member of the pair first (Hugging Face's
    /// `longest_first`), keeping the special tokens.
    Truncate,
}

/// The ids of one tokenized sequence, special tokens included, unpadded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read tokenizer {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("tokenizer {path} cannot truncate to {max_len} tokens: {message}")]
    Truncation {
        path: PathBuf,
        max_len: usize,
        message: String,
    },
    #[error("tokenizer {path} failed on the {which}: {message}")]
    Encode {
        path: PathBuf,
        which: &'static str,
        message: String,
    },
    #[error("the {which} is empty")]
    EmptyText { which: &'static str },
    #[error(
        "the input has {tokens} tokens (special tokens included) but the maximum length is \
         {max_len}; shorten it, raise the maximum length, or allow truncation"
    )]
    TooLong { tokens: usize, max_len: usize },
}

/// A tokenizer.json loaded twice: as written, and with longest-first
/// truncation at the maximum length, so neither path mutates shared state.
pub struct TextTokenizer {
    path: PathBuf,
    max_len: usize,
    plain: Tokenizer,
    truncating: Tokenizer,
}

impl TextTokenizer {
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self, TokenizerError> {
        let json = std::fs::read_to_string(path).map_err(|e| TokenizerError::Load {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_json(&json, path, max_len)
    }

    /// A tokenizer from tokenizer.json text; `path` names it in errors.
    pub fn from_json(json: &str, path: &Path, max_len: usize) -> Result<Self, TokenizerError> {
        let mut plain: Tokenizer =
            json.parse()
                .map_err(|e: tokenizers::Error| TokenizerError::Load {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        plain.with_truncation(None).ok();
        plain.with_padding(None);
        let mut truncating = plain.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| TokenizerError::Truncation {
                path: path.to_owned(),
                max_len,
                message: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_owned(),
            max_len,
            plain,
            truncating,
        })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenizes a sentence, or a sentence pair, with the model's special tokens.
    pub fn encode(
        &self,
        text: &str,
        pair: Option<&str>,
        overflow: Overflow,
    ) -> Result<Encoding, TokenizerError> {
        check_not_empty(text, "text")?;
        if let Some(pair) = pair {
            check_not_empty(pair, "pair")?;
        }
        let plain = self.encode_with(&self.plain, text, pair)?;
        if plain.ids.len() <= self.max_len {
            return Ok(plain);
        }
        match overflow {
            Overflow::Error => Err(TokenizerError::TooLong {
                tokens: plain.ids.len(),
                max_len: self.max_len,
            }),
            Overflow::Truncate => self.encode_with(&self.truncating, text, pair),
        }
    }

    fn encode_with(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
        pair: Option<&str>,
    ) -> Result<Encoding, TokenizerError> {
        let result = match pair {
            Some(pair) => tokenizer.encode((text, pair), true),
            None => tokenizer.encode(text, true),
        };
        let encoding = result.map_err(|e| TokenizerError::Encode {
            path: self.path.clone(),
            which: if pair.is_some() { "pair" } else { "text" },
            message: e.to_string(),
        })?;
        Ok(Encoding {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
        })
    }
}

fn check_not_empty(text: &str, which: &'static str) -> Result<(), TokenizerError> {
    if text.trim().is_empty() {
        return Err(TokenizerError::EmptyText { which });
    }
    Ok(())
}
