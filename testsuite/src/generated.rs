//! The generated decoder models of the benchmarks (scripts/gen_decoder.py): made on
//! demand into a cache directory (tens to hundreds of MB, never committed).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/bench-models` of the workspace.
pub fn default_dir() -> PathBuf {
    workspace().join("target/bench-models")
}

/// The repository's `.venv` Python (scripts/setup.sh), else `python3`.
pub fn default_python() -> PathBuf {
    let venv = workspace().join(".venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs gen_decoder.py for `preset` unless every folder of `names` is complete.
fn ensure(dir: &Path, python: &Path, preset: &str, names: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let complete = |d: &PathBuf| d.join("model.onnx").is_file() && d.join("test_data_set_0/output_0.pb").is_file();
    if !dirs.iter().all(complete) {
        eprintln!("generating the {preset} decoder into {} ...", dir.display());
        let status = Command::new(python)
            .arg(workspace().join("scripts/gen_decoder.py"))
            .arg(dir)
            .args(["--preset", preset])
            .status()
            .with_context(|| format!("running {} (a Python with onnx, numpy, onnxruntime: --python)", python.display()))?;
        if !status.success() {
            bail!("scripts/gen_decoder.py --preset {preset} failed ({status})");
        }
    }
    Ok(dirs)
}

/// The medium decoder (4 layers, d=256): its decode step and its 128-token prefill.
pub fn medium(dir: &Path, python: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure(dir, python, "medium", &["medium_decode", "medium_prefill"])
}

/// The ~100M-parameter decoder's decode step, with external data.
pub fn scale(dir: &Path, python: &Path) -> anyhow::Result<PathBuf> {
    Ok(ensure(dir, python, "scale", &["decoder_100m_decode"])?.remove(0))
}
