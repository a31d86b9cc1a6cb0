//! The `.xltc` file: everything the runtime needs to run a compiled model, in
//! one file the browser can fetch.
//!
//! ```text
//! magic       8 bytes   "XLTC\r\n\x1a\n"
//! version     u32 LE    FORMAT_VERSION
//! manifest    u64 LE length, then JSON (model, tokenizer, programs by kind)
//! weights     u64 LE length, then a safetensors blob (F32, checkpoint names)
//! checksum    32 bytes  SHA-256 of every byte before it
//! ```

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::ProgramLimits;
use crate::inputs::PositionScheme;
use crate::program::Program;

pub const MAGIC: [u8; 8] = *b"XLTC\r\n\x1a\n";
/// 3: programs by kind (the forward buckets, and optionally training's).
pub const FORMAT_VERSION: u32 = 3;
const CHECKSUM_BYTES: usize = 32;

/// What a model gives besides its hidden states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputKind {
    Classification,
    SentenceEmbedding { normalize: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    /// The config.json the model was compiled from, verbatim.
    pub config_json: String,
    pub output: OutputKind,
    pub labels: Vec<String>,
    pub pad_token_id: u32,
    pub positions: PositionScheme,
    /// The longest sequence the model's positions allow.
    pub max_tokens: usize,
}

/// One program, compiled for one (batch, sequence) bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub program: Program,
    /// Floating-point operations of one run of the program.
    pub flops: u64,
}

/// The programs of fine-tuning on the GPU (`xltc compile --training`). They
/// share every parameter's weight, gradient and moment buffers by role
/// ([`crate::program::BufferRole`]): the parameters stay on the adapter
/// from step to step. Their weights are the checkpoint's tensors one a
/// buffer, never packed, so a checkpoint written from them keeps Hugging
/// Face's layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Forward, loss and backward of one micro-batch, each parameter's
    /// gradient added into its gradient buffer: one a (batch rows,
    /// sequence) bucket, its loss the output `loss`.
    pub steps: Vec<Bucket>,
    /// The forward program of dev evaluation at the same shapes (logits),
    /// un-fused, so that it reads the parameters the steps update.
    pub forwards: Vec<Bucket>,
    /// Global-norm clipping and AdamW over every parameter, in place,
    /// zeroing the gradients; its output `gradient_norm`.
    pub optimizer: Program,
    /// Each parameter (checkpoint name, shape), in the order the optimizer
    /// adds their squares.
    pub parameters: Vec<(String, Vec<usize>)>,
    /// Whether the steps apply the model's dropout.
    pub dropout: bool,
    /// AdamW's decoupled weight decay, compiled into the optimizer.
    pub weight_decay: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: ModelInfo,
    pub tokenizer_json: String,
    /// The forward programs (prediction).
    pub buckets: Vec<Bucket>,
    /// Training's programs, where compiled for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    /// What `xltc compile --tune` measured and chose, where it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
}

/// The kernels `xltc compile --tune` chose on the adapter it ran on: the
/// runtime only runs them, and pays nothing for the choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The adapter the trials ran on, as the runtime reports it.
    pub adapter: String,
    pub gemms: Vec<TunedGemm>,
    /// The whole forward of one bucket with each choice of the fusions
    /// tried: the fastest exact one is what the programs use.
    #[serde(default)]
    pub fusions: Vec<FusionTrial>,
}

/// One choice of fusions, run on a probe bucket (batch 1, the longest
/// sequence) of the model itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusionTrial {
    /// The fusions tried on, of those tuned ("attention", "linear_norm").
    pub on: Vec<String>,
    pub seconds: f64,
    /// Against the CPU reference of the un-fused graph.
    pub relative_error: f64,
    /// Whether the programs use this choice.
    pub chosen: bool,
}

/// One GEMM of the programs (out [m, n] = x [m, k] times w [n, k]
/// transposed, either operand possibly stored k-major, with or without the
/// Linear epilogue) and the kernels tried for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunedGemm {
    /// [m, n, k].
    pub shape: [usize; 3],
    pub x_transposed: bool,
    pub w_transposed: bool,
    pub bias: bool,
    pub gelu: bool,
    /// The kernel the programs use: the fastest trial exact against the
    /// reference.
    pub kernel: String,
    pub trials: Vec<GemmTrial>,
}

/// One kernel's trial: its median seconds a run on the adapter and its
/// relative error against the CPU reference on the same random operands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GemmTrial {
    pub kernel: String,
    pub seconds: f64,
    pub relative_error: f64,
}

impl Manifest {
    /// Every program, with what it is for.
    pub fn programs(&self) -> Vec<(String, &Program)> {
        fn bucket<'a>(kind: &str, b: &'a Bucket) -> (String, &'a Program) {
            let name = format!("{kind} {} x {}", b.program.batch, b.program.seq);
            (name, &b.program)
        }
        let mut programs: Vec<(String, &Program)> =
            self.buckets.iter().map(|b| bucket("forward", b)).collect();
        if let Some(training) = &self.training {
            programs.extend(training.steps.iter().map(|b| bucket("train step", b)));
            programs.extend(training.forwards.iter().map(|b| bucket("dev forward", b)));
            programs.push(("optimizer step".into(), &training.optimizer));
        }
        programs
    }
}

pub struct Artifact {
    pub manifest: Manifest,
    /// The weights as a safetensors file.
    pub weights: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{origin}: not an xltc artifact (wrong magic)")]
    Magic { origin: String },
    #[error(
        "{origin}: artifact format version {found}; this xltc reads version {FORMAT_VERSION} \
         (recompile the model with this xltc)"
    )]
    Version { origin: String, found: u32 },
    #[error("{origin}: truncated ({what} ends past the end of the file)")]
    Truncated { origin: String, what: &'static str },
    #[error("{origin}: checksum mismatch: the file is corrupt")]
    Checksum { origin: String },
    #[error("{origin}: bad manifest: {message}")]
    Manifest { origin: String, message: String },
    #[error("{origin}: bad weights: {message}")]
    Weights { origin: String, message: String },
}

impl Artifact {
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifest = serde_json::to_vec(&self.manifest).expect("a manifest serialises");
        let mut bytes = Vec::with_capacity(manifest.len() + self.weights.len() + 64);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&manifest);
        bytes.extend_from_slice(&(self.weights.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&self.weights);
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum);
        bytes
    }

    /// The weights as f32 arrays by name (every weight an artifact holds is F32).
    pub fn weights_f32(&self, origin: &str) -> Result<BTreeMap<String, Vec<f32>>, ArtifactError> {
        let error = |message: String| ArtifactError::Weights {
            origin: origin.to_owned(),
            message,
        };
        let file = SafeTensors::deserialize(&self.weights).map_err(|e| error(e.to_string()))?;
        let mut weights = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(error(format!("{name} is {:?}, not F32", view.dtype())));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
            weights.insert(name, data.collect());
        }
        Ok(weights)
    }

    /// Parses an artifact; `origin` names it in errors (a path or a URL).
    pub fn from_bytes(origin: &str, bytes: &[u8]) -> Result<Self, ArtifactError> {
        let (manifest, weights) = Self::parse(origin, bytes)?;
        Ok(Self {
            manifest,
            weights: bytes[weights].to_vec(),
        })
    }

    /// [`Artifact::from_bytes`] keeping the weights where they are in
    /// `bytes`: a model's worth of memory less at the peak.
    pub fn from_vec(origin: &str, mut bytes: Vec<u8>) -> Result<Self, ArtifactError> {
        let (manifest, weights) = Self::parse(origin, &bytes)?;
        bytes.truncate(weights.end);
        bytes.drain(..weights.start);
        Ok(Self {
            manifest,
            weights: bytes,
        })
    }

    /// The checked manifest, and where the weights lie in `bytes`.
    fn parse(
        origin: &str,
        bytes: &[u8],
    ) -> Result<(Manifest, std::ops::Range<usize>), ArtifactError> {
        let origin = origin.to_owned();
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(ArtifactError::Magic { origin });
        }
        let mut reader = Reader {
            bytes,
            at: MAGIC.len(),
            origin: &origin,
        };
        let version = u32::from_le_bytes(reader.take(4, "the version")?.try_into().unwrap());
        if version != FORMAT_VERSION {
            return Err(ArtifactError::Version {
                origin,
                found: version,
            });
        }
        let manifest = reader.section("the manifest")?;
        let weights_end = reader.section("the weights")?.len();
        let body_end = reader.at;
        let weights = body_end - weights_end..body_end;
        let checksum = reader.take(CHECKSUM_BYTES, "the checksum")?;
        if body_end + CHECKSUM_BYTES != bytes.len()
            || Sha256::digest(&bytes[..body_end])[..] != *checksum
        {
            return Err(ArtifactError::Checksum { origin });
        }
        let manifest: Manifest =
            serde_json::from_slice(manifest).map_err(|e| ArtifactError::Manifest {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        for (kind, program) in manifest.programs() {
            program
                .check(&ProgramLimits::none())
                .map_err(|e| ArtifactError::Manifest {
                    origin: origin.clone(),
                    message: format!("{kind}: {e}"),
                })?;
        }
        Ok((manifest, weights))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    origin: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ArtifactError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| ArtifactError::Truncated {
            origin: self.origin.to_owned(),
            what,
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// A u64 length, then that many bytes.
    fn section(&mut self, what: &'static str) -> Result<&'a [u8], ArtifactError> {
        let len = u64::from_le_bytes(self.take(8, what)?.try_into().unwrap());
        self.take(usize::try_from(len).unwrap_or(usize::MAX), what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        Artifact {
            manifest: Manifest {
                model: ModelInfo {
                    name: "m".into(),
                    architecture: "BertModel".into(),
                    config_json: "{}".into(),
                    output: OutputKind::Classification,
                    labels: vec!["a".into(), "b".into()],
                    pad_token_id: 0,
                    positions: PositionScheme::FromZero,
                    max_tokens: 8,
                },
                tokenizer_json: "{}".into(),
                buckets: vec![],
                training: Some(Training {
                    steps: vec![],
                    forwards: vec![],
                    optimizer: Program::default(),
                    parameters: vec![("w".into(), vec![3])],
                    dropout: true,
                    weight_decay: 0.01,
                }),
                tuning: Some(Tuning {
                    adapter: "lavapipe".into(),
                    gemms: vec![TunedGemm {
                        shape: [4, 8, 12],
                        x_transposed: false,
                        w_transposed: false,
                        bias: true,
                        gelu: true,
                        kernel: "matmul".into(),
                        trials: vec![GemmTrial {
                            kernel: "matmul".into(),
                            seconds: 0.5,
                            relative_error: 1e-7,
                        }],
                    }],
                    fusions: vec![FusionTrial {
                        on: vec!["attention".into()],
                        seconds: 0.25,
                        relative_error: 1e-7,
                        chosen: true,
                    }],
                }),
            },
            weights: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn round_trips() {
        let bytes = sample().to_bytes();
        let back = Artifact::from_bytes("m.xltc", &bytes).unwrap();
        assert_eq!(back.manifest, sample().manifest);
        assert_eq!(back.weights, sample().weights);
    }

    #[test]
    fn refuses_wrong_magic_newer_version_bad_checksum_and_truncation() {
        let bytes = sample().to_bytes();
        let error = |b: &[u8]| Artifact::from_bytes("m.xltc", b).err().unwrap().to_string();

        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = b'Y';
        assert!(error(&wrong_magic).contains("wrong magic"));

        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert!(error(&newer).contains(&format!("version {}", FORMAT_VERSION + 1)));

        let mut flipped = bytes.clone();
        let last_weight = bytes.len() - CHECKSUM_BYTES - 1;
        flipped[last_weight] ^= 1;
        assert!(error(&flipped).contains("checksum mismatch"));

        for cut in [10, 20, bytes.len() - CHECKSUM_BYTES - 2, bytes.len() - 1] {
            let message = error(&bytes[..cut]);
            assert!(
                message.contains("truncated") || message.contains("checksum"),
                "{cut}: {message}"
            );
        }
        assert!(error(&bytes[..bytes.len() - 10]).contains("truncated"));
        assert!(error(&bytes[..4]).contains("wrong magic"));
    }
}
