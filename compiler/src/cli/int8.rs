//! `--quantize int8 --calibration DIR [--calibration-method M] [--keep-float NODE...]`:
//! static post-training quantisation of the prepared graph (passes::quantize_int8),
//! with its accuracy report against the float graph (cli/quantize_report.rs).

use std::path::PathBuf;

use anyhow::Result;
use edgec::ir::Graph;
use edgec::passes::quantize_int8::{quantize, Int8Options, RangeMethod};

use super::quantize_report::{self, QuantReport};

#[derive(Clone, Debug)]
pub struct Int8Args {
    pub calibration: PathBuf,
    pub method: RangeMethod,
    pub keep_float: Vec<String>,
    /// `--test-data` sets for the accuracy report (default: the calibration sets).
    pub test_data: Vec<PathBuf>,
}

/// The accuracy report runs both graphs in the reference evaluator: on at most this many
/// calibration sets when no `--test-data` is given (calibration sets can be many).
const REPORT_SETS: usize = 16;

/// Calibrates and quantises, with the accuracy report (`edgec compile`).
pub fn apply(graph: Graph, a: &Int8Args) -> Result<(Graph, QuantReport)> {
    let float = graph.clone();
    let q = calibrate(graph, a)?;
    let (report_sets, source) = if a.test_data.is_empty() {
        let n = q.sets.len().min(REPORT_SETS);
        (q.sets[..n].to_vec(), format!("{n} of the {} calibration sets in {}", q.sets.len(), a.calibration.display()))
    } else {
        let inputs = edgec::accuracy::inputs(&float, &a.test_data, None, 0)?;
        (inputs.sets, inputs.source)
    };
    let report = quantize_report::int8(&float, &q.graph, &q.report, &q.method, q.sets.len(), &report_sets, &source)?;
    Ok((q.graph, report))
}

/// Calibrates and quantises without the accuracy report (`edgec profile`: only the
/// code matters); prints the one-line summary.
pub fn apply_quiet(graph: Graph, a: &Int8Args) -> Result<Graph> {
    let q = calibrate(graph, a)?;
    println!("int8: {} integer kernels, {} BatchNormalization folded, calibrated on {} input sets ({})", q.report.int8_kernels, q.report.folded_batchnorms, q.sets.len(), q.method);
    Ok(q.graph)
}

struct Calibrated {
    graph: Graph,
    report: edgec::passes::quantize_int8::Int8Report,
    sets: Vec<Vec<edgec::ir::Tensor>>,
    method: String,
}

fn calibrate(graph: Graph, a: &Int8Args) -> Result<Calibrated> {
    let sets = edgec::passes::calibration::read_sets(&a.calibration)?;
    let opts = Int8Options { method: a.method, keep_float: a.keep_float.clone() };
    let (graph, report) = quantize(graph, &sets, &opts)?;
    let method = match a.method {
        RangeMethod::MinMax => "min/max".to_string(),
        RangeMethod::Percentile(p) => format!("percentile {p}"),
    };
    Ok(Calibrated { graph, report, sets, method })
}
