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

pub fn quantize(graph: &mut Graph, mode: QuantizeMode, model_path: &Path, test_data: &[PathBuf]) -> Result<QuantReport> {
    let float = graph.clone();
    let summary = edgec::quantize::apply(graph, mode)?;
    let inputs = edgec::accuracy::inputs(&float, test_data, model_path.parent(), RANDOM_SETS)?;
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
    for u in &summary.uses {
        if let Err(why) = &u.outcome {
            lines.push(format!("  left float: '{}' of node '{}': {why}", u.weight, u.node));
        }
    }
    lines.push(format!("accuracy vs float on {}:", inputs.source));
    for o in &acc {
        lines.push(format!("  {}: max abs error {:.3e}, cosine {:.6}, SNR {:.1} dB", o.name, o.max_abs, o.cosine, o.snr_db));
    }
    let json = json!({
        "mode": mode.name(),
        "format": mode.block_format().name(),
        "weight_bytes_before": before,
        "weight_bytes_after": after,
        "quantized": summary.uses.iter().filter(|u| u.outcome.is_ok()).map(|u| json!({"node": u.node, "weight": u.weight})).collect::<Vec<_>>(),
        "left_float": summary.uses.iter().filter_map(|u| u.outcome.as_ref().err().map(|why| json!({"node": u.node, "weight": u.weight, "reason": why}))).collect::<Vec<_>>(),
        "accuracy_inputs": inputs.source,
        "accuracy": acc.iter().map(|o| json!({
            "output": o.name,
            "max_abs_error": o.max_abs,
            "cosine": o.cosine,
            // JSON has no infinity: identical outputs report null.
            "snr_db": if o.snr_db.is_finite() { json!(o.snr_db) } else { serde_json::Value::Null },
        })).collect::<Vec<_>>(),
    });
    Ok(QuantReport { lines, json })
}
