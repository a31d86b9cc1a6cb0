//! One file a subcommand of `xltc`.

pub mod compile;
pub mod eval;
pub mod inspect;
pub mod profile;
pub mod progress;
pub mod run;
pub mod train;

use std::path::Path;

use anyhow::{bail, Context, Result};
use xltc::frontend::Model;
use xltc::predict::Engine;
use xltc_runtime::{Artifact, Gpu, Manifest, Session, TextTokenizer};

/// Writes `bytes` to a temporary file beside `path`, then renames it into
/// place: a failed or interrupted write leaves no half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("the output path has no file name")?;
    let temporary = folder.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    write_file(&temporary, bytes).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })?;
    std::fs::rename(&temporary, path).with_context(|| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot move {} to {}", temporary.display(), path.display())
    })
}

/// `std::fs::write` whose error names the file (a full disk, a file-size
/// limit, a read-only folder).
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Fills a temporary folder beside `folder` with `fill`, then swaps it into
/// place: the old folder is moved aside to `<folder>.old` before the rename
/// and removed after it, so an interrupted write leaves the last complete
/// folder (as itself or as `.old`) and never a half-written one.
pub fn replace_folder(folder: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = folder
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = folder
        .file_name()
        .context("the output path has no folder name")?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let temporary = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let old = parent.join(format!("{name}.old"));
    let cannot = || format!("cannot write {}", folder.display());
    let swap = || -> Result<()> {
        std::fs::create_dir_all(&temporary).with_context(cannot)?;
        // fill's errors name their files.
        fill(&temporary)?;
        let rename = || -> std::io::Result<()> {
            if folder.exists() {
                if old.exists() {
                    std::fs::remove_dir_all(&old)?;
                }
                std::fs::rename(folder, &old)?;
            }
            std::fs::rename(&temporary, folder)?;
            if old.exists() {
                std::fs::remove_dir_all(&old)?;
            }
            Ok(())
        };
        rename().with_context(cannot)
    };
    swap().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&temporary);
    })
}

/// Whether a path names a compiled artifact rather than a model folder.
pub fn is_artifact(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "xltc")
}

pub fn read_artifact(path: &Path) -> Result<Artifact> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Artifact::from_vec(&path.display().to_string(), bytes)?)
}

/// 1536 -> "1.5 KiB".
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// The model at `path`, a compiled artifact (its manifest returned too; its
/// weights live on in the model alone) or a model folder.
pub fn open_model(path: &Path) -> Result<(Model, Option<Manifest>)> {
    if is_artifact(path) {
        let artifact = read_artifact(path)?;
        let model = Model::from_artifact(path, &artifact)?;
        Ok((model, Some(artifact.manifest)))
    } else {
        Ok((Model::load(path)?, None))
    }
}

/// The model, and where it runs: an artifact's programs on the GPU, kernels
/// lowered on the fly for a model folder, or the CPU reference.
pub fn load_model(path: &Path, cpu: bool) -> Result<(Model, Engine)> {
    let (model, manifest) = open_model(path)?;
    if cpu {
        return Ok((model, Engine::Cpu));
    }
    let gpu = Gpu::new_blocking()?;
    eprintln!("xltc: adapter {}", gpu.adapter);
    let engine = match manifest {
        Some(manifest) => Engine::Compiled {
            gpu,
            session: Session::new(manifest.buckets, &manifest.model),
        },
        None => Engine::Gpu(gpu),
    };
    Ok((model, engine))
}

/// The model's tokenizer, cutting at `max_len` tokens (at most what the
/// artifact's largest bucket and the model's positions allow).
pub fn text_tokenizer(model: &Model, engine: &Engine, max_len: usize) -> Result<TextTokenizer> {
    if max_len < 2 {
        bail!("--max-len must be at least 2 (room for the special tokens)");
    }
    let mut max_len = max_len;
    if let Engine::Compiled { session, .. } = engine {
        max_len = max_len.min(session.max_seq());
    }
    if max_len > model.max_tokens() {
        bail!(
            "--max-len {} is more than this model's {} positions allow ({})",
            max_len,
            model.config.max_positions,
            model.max_tokens()
        );
    }
    Ok(TextTokenizer::from_json(
        &model.tokenizer_json,
        &model.origin,
        max_len,
    )?)
}

/// Where a computation ran, in words: the CPU reference or the adapter.
pub fn engine_name(engine: &Engine) -> String {
    match engine {
        Engine::Cpu => "the CPU reference".to_owned(),
        Engine::Gpu(gpu) => gpu.adapter.to_string(),
        Engine::Compiled { gpu, .. } => format!("{} (compiled artifact)", gpu.adapter),
    }
}
