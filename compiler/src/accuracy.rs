//! The accuracy report of a quantized compilation: the quantized graph against the
//! float one on the same inputs, per output — max absolute error, cosine similarity
//! and signal-to-noise ratio. Mode-agnostic: it takes two graphs and input sets, so any
//! quantization reuses it.
//!
//! Inputs come from `--test-data DIR`, else the model's `test_data_set_*`, else seeded
//! random values of the right shapes (integer inputs that index a Gather stay within
//! its table; floats uniform in [-1, 1)). Both graphs run on the reference evaluator.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Tensor, ValueId};
use crate::ops::blockquant::BlockQuantOp;
use crate::ops::index::IndexOp;
use crate::ops::Op;

/// One output's figures over every input set.
#[derive(Clone, Debug)]
pub struct OutputAccuracy {
    pub name: String,
    pub max_abs: f64,
    pub cosine: f64,
    /// `10 log10(sum ref^2 / sum (ref - q)^2)`; infinite when identical.
    pub snr_db: f64,
}

/// Where the inputs of the report came from.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub source: String,
    /// Seeded random values (no test data was found).
    pub random: bool,
    pub sets: Vec<Vec<Tensor>>,
}

/// Runs both graphs on every set and compares their outputs.
pub fn compare(float: &Graph, quant: &Graph, sets: &[Vec<Tensor>]) -> Result<Vec<OutputAccuracy>> {
    let names: Vec<String> = float.outputs.iter().map(|&v| float.value(v).name.clone()).collect();
    // Per output: max |e|, sum r*q, sum r^2, sum q^2, sum e^2.
    let mut acc = vec![[0f64; 5]; names.len()];
    for inputs in sets {
        let want = crate::eval::run(float, inputs)?;
        let got = crate::eval::run(quant, inputs)?;
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
            let a = &mut acc[k];
            for (r, q) in w.iter().zip(&g) {
                let e = r - q;
                a[0] = a[0].max(e.abs());
                a[1] += r * q;
                a[2] += r * r;
                a[3] += q * q;
                a[4] += e * e;
            }
        }
    }
    Ok(names
        .into_iter()
        .zip(acc)
        .map(|(name, a)| OutputAccuracy {
            name,
            max_abs: a[0],
            cosine: if a[2] > 0.0 && a[3] > 0.0 { a[1] / (a[2].sqrt() * a[3].sqrt()) } else { f64::from(a[2] == a[3]) },
            snr_db: if a[4] == 0.0 { f64::INFINITY } else { 10.0 * (a[2] / a[4]).log10() },
        })
        .collect())
}

/// The report's inputs for a prepared graph: `test_data` sets if given, else the
/// `test_data_set_*` in `model_dir` whose inputs fit the graph, else `n_random` seeded
/// random sets.
pub fn inputs(g: &Graph, test_data: &[std::path::PathBuf], model_dir: Option<&Path>, n_random: usize) -> Result<Inputs> {
    let dirs = if test_data.is_empty() { model_dir.map(crate::testdata::data_sets).unwrap_or_default() } else { test_data.to_vec() };
    let mut sets = Vec::new();
    for d in &dirs {
        let set = crate::testdata::read_numbered(d, "input")?;
        if fits(g, &set) {
            sets.push(set);
        } else if !test_data.is_empty() {
            return Err(Error::Usage(format!("{}: the inputs do not match the compiled model's input types", d.display())));
        }
    }
    if !sets.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        return Ok(Inputs { source: names.join(", "), sets, random: false });
    }
    let sets = (0..n_random as u64).map(|s| random_inputs(g, 0x5eed + s)).collect::<Result<_>>()?;
    Ok(Inputs { source: format!("{n_random} seeded random input set(s)"), sets, random: true })
}

fn fits(g: &Graph, set: &[Tensor]) -> bool {
    set.len() == g.inputs.len()
        && g.inputs.iter().zip(set).all(|(&v, t)| {
            g.value(v).ty.as_ref().is_some_and(|ty| ty.dtype == t.dtype() && ty.shape == t.shape())
        })
}

/// Rows of the smallest Gather table indexed by input `v`, if any.
fn gather_rows(g: &Graph, v: ValueId) -> Option<usize> {
    g.nodes
        .node_weights()
        .filter_map(|n| match &n.op {
            Op::Index(IndexOp::Gather { .. }) if n.inputs.get(1) == Some(&Some(v)) => {
                n.inputs[0].and_then(|d| g.value(d).ty.as_ref().and_then(|t| t.shape.first().copied()))
            }
            Op::BlockQuant(BlockQuantOp::Gather { rows, .. }) if n.inputs.get(1) == Some(&Some(v)) => Some(*rows),
            _ => None,
        })
        .min()
}

/// Seeded random values for every graph input.
pub fn random_inputs(g: &Graph, seed: u64) -> Result<Vec<Tensor>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: reproducible everywhere, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::new();
    for &v in &g.inputs {
        let val = g.value(v);
        let ty = val.ty.clone().ok_or_else(|| Error::Internal(format!("input '{}' has no type", val.name)))?;
        let n: usize = ty.shape.iter().product();
        let t = match ty.dtype {
            DType::F32 => Tensor::from_vec(&ty.shape, (0..n).map(|_| (next() * 2.0 - 1.0) as f32).collect()),
            DType::I64 | DType::I32 => {
                let hi = gather_rows(g, v).unwrap_or(2).max(1) as f64;
                let vals: Vec<i64> = (0..n).map(|_| (next() * hi) as i64).collect();
                let t = Tensor::from_vec(&ty.shape, vals);
                if ty.dtype == DType::I32 { t.cast(DType::I32) } else { t }
            }
            DType::Bool => Tensor::from_vec(&ty.shape, (0..n).map(|_| next() < 0.5).collect()),
            d => Tensor::zeros(d, &ty.shape),
        };
        out.push(t);
    }
    Ok(out)
}
