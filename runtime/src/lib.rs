//! xltc runtime: turns text into model inputs and runs compiled programs on a
//! wgpu device. It never needs the compiler; the compiler depends on it.

pub mod artifact;
pub mod device;
pub mod executor;
pub mod inputs;
pub mod program;
pub mod session;
pub mod similarity;
pub mod tokenizer;

pub use artifact::{Artifact, ArtifactError, Manifest};
pub use device::{AdapterReport, Gpu, GpuError};
pub use executor::{Executor, Output, WeightBuffers};
pub use inputs::{ModelInputs, PositionScheme};
pub use program::Program;
pub use session::{Session, SessionError};
pub use similarity::cosine;
pub use tokenizer::{Encoding, Overflow, TextTokenizer, TokenizerError};
