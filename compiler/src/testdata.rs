//! Reference data in the ONNX backend-test layout (`test_data_set_N/{input,output}_K.pb`)
//! and the comparison of outputs with it: the contract's tolerance for floats
//! (`|got - want| <= atol + rtol * |want|`, NaN equal to NaN), exact for the rest.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::front::onnx::read_tensor_file;
use crate::ir::{DType, Tensor};

/// The `test_data_set_*` directories in `dir`, sorted.
pub fn data_sets(dir: &Path) -> Vec<PathBuf> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    sets
}

/// `PREFIX_0.pb`, `PREFIX_1.pb`, ... in `dir` (prefix `input` or `output`), until one is missing.
pub fn read_numbered(dir: &Path, prefix: &str) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    for k in 0.. {
        let p = dir.join(format!("{prefix}_{k}.pb"));
        if !p.exists() {
            break;
        }
        out.push(read_tensor_file(&p)?.1);
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

/// The contract's float32 tolerance.
pub const CONTRACT: Tolerance = Tolerance { atol: 1e-4, rtol: 1e-3 };

/// How far `got` is from `want`: `Ok((max abs error, max rel error))`, or why it fails.
pub fn compare(got: &Tensor, want: &Tensor, tol: Tolerance) -> Result<(f64, f64), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("type {} expected {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Err(format!("shape {:?} expected {:?}", got.shape(), want.shape()));
    }
    let exact = !want.dtype().is_float();
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    // 64-bit integers do not survive f64: compare them as integers.
    if matches!(want.dtype(), DType::I64 | DType::U64 | DType::I32 | DType::U32) {
        let (gi, wi) = (got.cast(DType::I64).to_i64_vec(), want.cast(DType::I64).to_i64_vec());
        if let (Some(gi), Some(wi)) = (gi, wi) {
            if let Some(k) = (0..gi.len()).find(|&k| gi[k] != wi[k]) {
                return Err(format!("element {k}: got {} expected {}", gi[k], wi[k]));
            }
        }
    }
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    let mut worst: Option<(usize, f64)> = None;
    for k in 0..w.len() {
        let (a, b) = (g[k], w[k]);
        if a.is_nan() && b.is_nan() || a == b {
            continue;
        }
        let d = (a - b).abs();
        let ok = !exact && d.is_finite() && d <= tol.atol + tol.rtol * b.abs();
        if d.is_finite() {
            max_abs = max_abs.max(d);
            if b != 0.0 {
                max_rel = max_rel.max(d / b.abs());
            }
        }
        if !ok {
            let excess = if d.is_finite() { d - (tol.atol + tol.rtol * b.abs()) } else { f64::INFINITY };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((k, excess));
            }
        }
    }
    match worst {
        None => Ok((max_abs, max_rel)),
        Some((k, _)) => Err(format!(
            "element {k}: got {} expected {} (max abs error {max_abs:.3e}, max rel error {max_rel:.3e})",
            g[k], w[k]
        )),
    }
}
