//! `edgec compile --quantize MODE`: quantizes the prepared graph and reports what it
//! costs — weight bytes before/after, and per output the error of the quantized graph
//! against the float one (library: `edgec::accuracy`) — as printed lines and as the
//! manifest's `quantization` field.

use std::path::{Path, PathBuf};

use anyhow::Result;
use edgec::ir::Graph;
use edgec::quantize::QuantizeMode;
use serde_json::json;

pub struct QuantReport {
    pub lines: Vec<String>,
    pub json: serde_json::Value,
}

/// Random input sets used when the model has no test data.
const RANDOM_SETS: usize = 2;

pub fn quantize(graph: &mut Graph, mode: QuantizeMode, model_path: &Path, test_data: &[PathBuf], calibration: Option<&Path>) -> Result<QuantReport> {
    let float = graph.clone();
    let inputs = edgec::accuracy::inputs(&float, test_data, model_path.parent(), RANDOM_SETS)?;
    // GPTQ rounding needs real inputs: --calibration DIR's test_data_set_* (or DIR
    // itself), else the report's test data; random inputs give plain rounding.
    let (calib, calib_source) = match calibration {
        Some(dir) => {
            let mut dirs = edgec::testdata::data_sets(dir);
            if dirs.is_empty() {
                dirs.push(dir.to_path_buf());
            }
            let c = edgec::accuracy::inputs(&float, &dirs, None, 0)?;
            (c.sets, c.source)
        }
        None if inputs.random => (Vec::new(), String::new()),
        None => (inputs.sets.clone(), inputs.source.clone()),
    };
    let summary = edgec::quantize::apply_calibrated(graph, mode, &calib)?;
    let acc = edgec::accuracy::compare(&float, graph, &inputs.sets)?;
    let (before, after) = (summary.weight_bytes_before, summary.weight_bytes_after);
    let pct = if before > 0 { 100.0 * after as f64 / before as f64 } else { 100.0 };
    let mut lines = vec![format!(
        "quantize: {} ({}): {} weight use(s) quantized, {} left float; weight bytes {before} -> {after} ({pct:.1}%)",
        mode.name(),
        mode.block_format().name(),
        summary.quantized(),
        summary.uses.len() - summary.quantized(),
    )];
    if summary.gptq > 0 {
        lines.push(format!("  {} weight use(s) rounded with GPTQ on {} calibration set(s) from {calib_source}", summary.gptq, calib.len()));
    }
    for u in &summary.uses {
        if let Err(why) = &u.outcome {
            lines.push(format!("  left float: '{}' of node '{}': {why}", u.weight, u.node));
        }
    }
    lines.extend(accuracy_lines(&acc, &inputs.source));
    let json = json!({
        "mode": mode.name(),
        "format": mode.block_format().name(),
        "weight_bytes_before": before,
        "weight_bytes_after": after,
        "gptq_rounded": summary.gptq,
        "quantized": summary.uses.iter().filter(|u| u.outcome.is_ok()).map(|u| json!({"node": u.node, "weight": u.weight})).collect::<Vec<_>>(),
        "left_float": summary.uses.iter().filter_map(|u| u.outcome.as_ref().err().map(|why| json!({"node": u.node, "weight": u.weight, "reason": why}))).collect::<Vec<_>>(),
        "accuracy_inputs": inputs.source,
        "accuracy": accuracy_json(&acc),
    });
    Ok(QuantReport { lines, json })
}

/// `--quantize int8`: the report of static PTQ (cli/int8.rs) — what was quantised, the
/// constant bytes before/after, and per output the error of the int8 graph against the
/// float one on `sets` (the `--test-data` sets, else the calibration sets).
pub fn int8(float: &Graph, quant: &Graph, r: &edgec::passes::quantize_int8::Int8Report, method: &str, calib_sets: usize, sets: &[Vec<edgec::ir::Tensor>], source: &str) -> Result<QuantReport> {
    use edgec::passes::quantize_weights::constant_bytes;
    let acc = edgec::accuracy::compare(float, quant, sets)?;
    let (before, after) = (constant_bytes(float), constant_bytes(quant));
    let pct = if before > 0 { 100.0 * after as f64 / before as f64 } else { 100.0 };
    let mut lines = vec![format!(
        "quantize: int8: {} integer kernels, {} BatchNormalization folded, calibrated on {calib_sets} input sets ({method}){}; weight bytes {before} -> {after} ({pct:.1}%)",
        r.int8_kernels,
        r.folded_batchnorms,
        if r.kept_float.is_empty() { String::new() } else { format!("; kept float: {}", r.kept_float.join(", ")) }
    )];
    lines.extend(accuracy_lines(&acc, source));
    let json = json!({
        "mode": "int8",
        "calibration_method": method,
        "calibration_sets": calib_sets,
        "int8_kernels": r.int8_kernels,
        "folded_batchnorms": r.folded_batchnorms,
        "kept_float": r.kept_float,
        "weight_bytes_before": before,
        "weight_bytes_after": after,
        "accuracy_inputs": source,
        "accuracy": accuracy_json(&acc),
    });
    Ok(QuantReport { lines, json })
}

fn accuracy_lines(acc: &[edgec::accuracy::OutputAccuracy], source: &str) -> Vec<String> {
    let mut lines = vec![format!("accuracy vs float on {source}:")];
    for o in acc {
        lines.push(format!("  {}: max abs error {:.3e}, cosine {:.6}, SNR {:.1} dB", o.name, o.max_abs, o.cosine, o.snr_db));
    }
    lines
}

fn accuracy_json(acc: &[edgec::accuracy::OutputAccuracy]) -> serde_json::Value {
    acc.iter()
        .map(|o| {
            json!({
                "output": o.name,
                "max_abs_error": o.max_abs,
                "cosine": o.cosine,
                // JSON has no infinity: identical outputs report null.
                "snr_db": if o.snr_db.is_finite() { json!(o.snr_db) } else { serde_json::Value::Null },
            })
        })
        .collect()
}
