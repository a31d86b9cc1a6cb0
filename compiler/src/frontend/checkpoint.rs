//! model.safetensors read into f32 tensors, and checked against the tensors an
//! architecture expects: every expected tensor present with its shape, and
//! nothing unexplained left over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::FrontendError;

#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Arc<[f32]>,
}

/// A tensor an architecture reads, by its checkpoint name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// What an architecture says about a checkpoint's tensor names.
pub struct Expected {
    /// Read by the graph; each must be present with this shape.
    pub required: Vec<TensorSpec>,
    /// Allowed and unused (a pooler on a bare encoder, say).
    pub optional: Vec<String>,
    /// Name prefixes of parts that are allowed and unused (pre-training heads,
    /// buffers such as position_ids).
    pub ignored_prefixes: Vec<String>,
}

#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// Tensors of other dtypes (integer buffers such as position_ids), by dtype.
    other_dtypes: BTreeMap<String, String>,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self, FrontendError> {
        let bytes = std::fs::read(path).map_err(|source| FrontendError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    /// Parses safetensors bytes; `path` names them in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, FrontendError> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| FrontendError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        let mut other_dtypes = BTreeMap::new();
        for (name, view) in file.tensors() {
            match to_f32(view.dtype(), view.data()) {
                Some(data) => {
                    let shape = view.shape().to_vec();
                    tensors.insert(name, Tensor { shape, data });
                }
                None => {
                    other_dtypes.insert(name, format!("{:?}", view.dtype()));
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            tensors,
            other_dtypes,
        })
    }

    /// Forgets every tensor: for a caller whose weights now live on the
    /// GPU alone.
    pub fn drop_data(&mut self) {
        self.tensors.clear();
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A tensor the architecture requires; [`Checkpoint::validate`] has
    /// already checked that it is there with the right shape.
    pub fn tensor(&self, name: &str) -> &Tensor {
        &self.tensors[name]
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The named tensors as a safetensors file of F32.
    pub fn to_safetensors(&self, names: &[String]) -> Vec<u8> {
        let views: Vec<(String, TensorView)> = names
            .iter()
            .map(|name| {
                let tensor = &self.tensors[name];
                let bytes: &[u8] = bytemuck::cast_slice(&tensor.data);
                let view = TensorView::new(Dtype::F32, tensor.shape.clone(), bytes)
                    .expect("shape and data agree");
                (name.clone(), view)
            })
            .collect();
        safetensors::tensor::serialize(views, None).expect("F32 tensors serialise")
    }

    pub fn validate(&self, expected: &Expected, architecture: &str) -> Result<(), FrontendError> {
        for spec in &expected.required {
            let Some(found) = self.tensors.get(&spec.name) else {
                return Err(match self.other_dtypes.get(&spec.name) {
                    Some(dtype) => FrontendError::UnsupportedDtype {
                        path: self.path.clone(),
                        name: spec.name.clone(),
                        dtype: dtype.clone(),
                    },
                    None => FrontendError::MissingTensor {
                        path: self.path.clone(),
                        name: spec.name.clone(),
                        expected: spec.shape.clone(),
                    },
                });
            };
            if found.shape != spec.shape {
                return Err(FrontendError::ShapeMismatch {
                    path: self.path.clone(),
                    name: spec.name.clone(),
                    expected: spec.shape.clone(),
                    actual: found.shape.clone(),
                });
            }
        }
        let known: BTreeSet<&str> = expected
            .required
            .iter()
            .map(|s| s.name.as_str())
            .chain(expected.optional.iter().map(String::as_str))
            .collect();
        let unexpected: Vec<&str> = self
            .all_names()
            .filter(|n| !known.contains(n))
            .filter(|n| {
                !expected
                    .ignored_prefixes
                    .iter()
                    .any(|p| n.starts_with(p.as_str()))
            })
            .collect();
        match unexpected.first() {
            None => Ok(()),
            Some(first) => Err(FrontendError::UnexpectedTensor {
                path: self.path.clone(),
                name: first.to_string(),
                count: unexpected.len(),
                architecture: architecture.to_owned(),
            }),
        }
    }

    /// Every tensor name in the file, whatever its dtype.
    fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names()
            .chain(self.other_dtypes.keys().map(String::as_str))
    }
}

/// Collected straight into the `Arc` (the iterators know their length), so
/// a table is never held twice.
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Arc<[f32]>> {
    let words = |n: usize| bytes.chunks_exact(n);
    Some(match dtype {
        Dtype::F32 => words(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::F64 => words(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect(),
        Dtype::F16 => words(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => words(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}
