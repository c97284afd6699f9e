//! Writing artifacts all-or-nothing: every file goes to a temporary file in the output
//! directory first and is renamed into place only when all were written, so a failed
//! compile never leaves a header without its code or a blob of another compilation.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `(file name, contents)` into `dir` (created if missing); returns the paths.
pub fn write_all(dir: &Path, files: &[(String, &[u8])]) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut temps = Vec::with_capacity(files.len());
    for (name, data) in files {
        let mut t = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(dir).map_err(io(dir))?;
        t.write_all(data).and_then(|_| t.flush()).map_err(io(t.path()))?;
        temps.push((t, dir.join(name)));
    }
    let mut written = Vec::with_capacity(temps.len());
    for (t, path) in temps {
        t.persist(&path).map_err(|e| Error::Io { path: path.display().to_string(), source: e.error })?;
        written.push(path);
    }
    Ok(written)
}
