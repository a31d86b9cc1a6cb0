//! One file a subcommand of `xltc`.

pub mod compile;
pub mod inspect;
pub mod run;

use std::path::Path;

use anyhow::{Context, Result};
use xltc_runtime::Artifact;

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
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot move {} to {}", temporary.display(), path.display())
    })
}

/// Whether a path names a compiled artifact rather than a model folder.
pub fn is_artifact(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "xltc")
}

pub fn read_artifact(path: &Path) -> Result<Artifact> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Artifact::from_bytes(&path.display().to_string(), &bytes)?)
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
