//! xltc runtime: what turns text into model inputs and, later, runs a compiled
//! artifact. It never needs the compiler; the compiler depends on it.

pub mod inputs;
pub mod tokenizer;

pub use inputs::{ModelInputs, PositionScheme};
pub use tokenizer::{Encoding, Overflow, TextTokenizer, TokenizerError};
