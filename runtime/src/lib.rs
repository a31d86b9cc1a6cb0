//! xltc runtime: turns text into model inputs and runs compiled programs on a
//! wgpu device. It never needs the compiler; the compiler depends on it.

pub mod artifact;
pub mod check;
pub mod device;
pub mod evaluation;
pub mod executor;
pub mod inputs;
pub mod pairs;
pub mod prediction;
#[cfg(not(target_arch = "wasm32"))]
pub mod profile;
pub mod program;
pub mod random;
pub mod session;
pub mod similarity;
pub mod synonyms;
pub mod tokenizer;

pub use artifact::{Artifact, ArtifactError, Manifest};
pub use check::{ProgramError, ProgramLimits};
pub use device::{AdapterReport, Gpu, GpuError};
pub use executor::{Executor, Output, WeightBuffers};
pub use inputs::{ModelInputs, PositionScheme, TrainingInputs};
pub use pairs::{LabelledPair, PairFile, PairFileError};
pub use prediction::{Prediction, Request, RequestError};
pub use program::Program;
pub use random::{philox_uniform, SplitMix64};
pub use session::{rows_of, Session, SessionError};
pub use similarity::cosine;
pub use synonyms::{SynonymError, SynonymSets};
pub use tokenizer::{Encoding, Overflow, TextTokenizer, TokenizerError};
