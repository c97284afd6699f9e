//! `--quantize int8 --calibration DIR [--calibration-method M] [--keep-float NODE...]`:
//! static post-training quantisation of the prepared graph (passes::quantize_int8).

use std::path::PathBuf;

use anyhow::Result;
use edgec::ir::Graph;
use edgec::passes::quantize_int8::{quantize, Int8Options, RangeMethod};

#[derive(Clone, Debug)]
pub struct Int8Args {
    pub calibration: PathBuf,
    pub method: RangeMethod,
    pub keep_float: Vec<String>,
}

/// Calibrates and quantises; prints what it did.
pub fn apply(graph: Graph, a: &Int8Args) -> Result<Graph> {
    let sets = edgec::passes::calibration::read_sets(&a.calibration)?;
    let opts = Int8Options { method: a.method, keep_float: a.keep_float.clone() };
    let (g, r) = quantize(graph, &sets, &opts)?;
    let method = match a.method {
        RangeMethod::MinMax => "min/max".to_string(),
        RangeMethod::Percentile(p) => format!("percentile {p}"),
    };
    println!(
        "int8:    {} integer kernels, {} BatchNormalization folded, calibrated on {} input sets ({method}){}",
        r.int8_kernels,
        r.folded_batchnorms,
        sets.len(),
        if r.kept_float.is_empty() { String::new() } else { format!("; kept float: {}", r.kept_float.join(", ")) }
    );
    Ok(g)
}
