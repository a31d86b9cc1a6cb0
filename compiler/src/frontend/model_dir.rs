//! Finds the files of a model: model.safetensors with config.json and
//! tokenizer.json beside it, given either the folder or the safetensors file.

use std::path::{Path, PathBuf};

use super::FrontendError;

#[derive(Clone, Debug)]
pub struct ModelFiles {
    pub folder: PathBuf,
    pub weights: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    /// sentence-transformers' module list, when the model has one.
    pub modules: Option<PathBuf>,
}

impl ModelFiles {
    pub fn locate(path: &Path) -> Result<Self, FrontendError> {
        if !path.exists() {
            return Err(FrontendError::NotFound {
                path: path.to_owned(),
            });
        }
        let (folder, weights) = if path.is_dir() {
            (path.to_owned(), path.join("model.safetensors"))
        } else {
            let folder = path.parent().unwrap_or(Path::new(".")).to_owned();
            (folder, path.to_owned())
        };
        let require = |p: PathBuf| {
            if p.is_file() {
                Ok(p)
            } else {
                Err(FrontendError::MissingFile { path: p })
            }
        };
        let modules = folder.join("modules.json");
        Ok(Self {
            weights: require(weights)?,
            config: require(folder.join("config.json"))?,
            tokenizer: require(folder.join("tokenizer.json"))?,
            modules: modules.is_file().then_some(modules),
            folder,
        })
    }
}
