//! `NAME.json`: the manifest (contract fields first, then edgec's own).

use serde::Serialize;

use super::{Interface, Report};

#[derive(Serialize)]
pub(super) struct Tensor<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [usize],
}

#[derive(Serialize)]
struct Manifest<'a> {
    name: &'a str,
    target: &'a str,
    inputs: Vec<Tensor<'a>>,
    outputs: Vec<Tensor<'a>>,
    arena_size: usize,
    arena_align: usize,
    weights_size: usize,
    arena_lower_bound: usize,
    ops_before: usize,
    ops_after: usize,
    kernels: usize,
    code: &'a str,
    code_bytes: usize,
    embedded_weights: bool,
    model_hash: String,
    /// MCU targets: flash/RAM figures and budgets (emit/footprint.rs).
    #[serde(flatten)]
    footprint: Option<&'a super::footprint::Footprint>,
}

pub(super) fn tensors(l: &[super::TensorInfo]) -> Vec<Tensor<'_>> {
    l.iter().map(|t| Tensor { name: &t.name, dtype: t.dtype.name(), shape: &t.shape }).collect()
}

pub fn manifest(iface: &Interface, report: &Report) -> String {
    manifest_with(iface, report, None)
}

/// The manifest with one more top-level field (a shape family's `family`).
pub fn manifest_with(iface: &Interface, report: &Report, extra: Option<(&str, serde_json::Value)>) -> String {
    let m = Manifest {
        name: iface.name,
        target: iface.target,
        inputs: tensors(&iface.inputs),
        outputs: tensors(&iface.outputs),
        arena_size: iface.arena_size,
        arena_align: iface.arena_align,
        weights_size: iface.weights_size,
        arena_lower_bound: report.arena_lower_bound,
        ops_before: report.ops_before,
        ops_after: report.ops_after,
        kernels: report.kernels,
        code: report.code_kind,
        code_bytes: report.code_bytes,
        embedded_weights: iface.embedded,
        model_hash: format!("{:016x}", report.model_hash),
        footprint: report.footprint.as_ref(),
    };
    let mut value = serde_json::to_value(&m).unwrap_or_default();
    if let (Some((key, v)), Some(obj)) = (extra, value.as_object_mut()) {
        obj.insert(key.to_string(), v);
    }
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

/// `manifest` with one more top-level field `key` (after the others): for figures known
/// only to the caller, such as the accuracy report of `--quantize`.
pub fn with_field(manifest: &str, key: &str, value: &serde_json::Value) -> String {
    let body = manifest.trim_end().strip_suffix('}').unwrap_or(manifest).trim_end();
    let v = serde_json::to_string_pretty(value).unwrap_or_default().replace('\n', "\n  ");
    format!("{body},\n  {}: {v}\n}}\n", serde_json::Value::String(key.into()))
}
