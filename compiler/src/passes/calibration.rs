//! Calibration input sets for `--quantize int8 --calibration DIR`: DIR holds either
//! `test_data_set_*/input_N.pb` (the ONNX backend-test layout) or `.npy` files, one per
//! input set of a single-input model, taken in file-name order.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ir::Tensor;
use crate::testdata::{data_sets, read_numbered};

pub fn read_sets(dir: &Path) -> Result<Vec<Vec<Tensor>>> {
    let sets = data_sets(dir);
    if !sets.is_empty() {
        return sets.iter().map(|s| read_numbered(s, "input")).collect();
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Usage(format!("--calibration {}: {e}", dir.display())))?;
    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "npy")).collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "--calibration {}: no test_data_set_* directories and no .npy files",
            dir.display()
        )));
    }
    files.iter().map(|f| read_npy(f).map(|t| vec![t])).collect()
}

/// A little-endian, C-order `.npy` (version 1-3) of float32, float64, int64 or int32.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bad = |why: &str| Error::Usage(format!("{}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            return Err(bad("truncated header"));
        }
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    let field = |key: &str| header.split(key).nth(1).map(|s| s.trim_start_matches(|c: char| c == '\'' || c == ':' || c == ' '));
    if field("'fortran_order'").is_some_and(|s| s.starts_with("True")) {
        return Err(bad("Fortran order is not supported"));
    }
    let descr = field("'descr'").and_then(|s| s.split('\'').next()).ok_or_else(|| bad("no descr"))?;
    let shape_txt = field("'shape'").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let data = &bytes[start + hlen..];
    let n: usize = shape.iter().product();
    macro_rules! read {
        ($t:ty, $w:expr) => {{
            if data.len() < n * $w {
                return Err(bad("truncated data"));
            }
            let v: Vec<$t> = data.chunks_exact($w).take(n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect();
            Ok(Tensor::from_vec(&shape, v))
        }};
    }
    match descr {
        "<f4" => read!(f32, 4),
        "<f8" => read!(f64, 8),
        "<i8" => read!(i64, 8),
        "<i4" => read!(i32, 4),
        d => Err(bad(&format!("element type {d} is not supported (float32, float64, int64, int32)"))),
    }
}
