//! Node tests often pass shape-deciding values (axes, target shapes, pads, `k`, Resize
//! scales, Range bounds ...) as graph inputs, which a static compile cannot take. When
//! preparation reports a data-dependent shape, the compiled targets retry with the small
//! integer and bool inputs fixed to the test's values — what a real model's initializers
//! would be. If shapes still depend on values, small float inputs are fixed too, and then
//! each float input whose value no shape needs is released again, so only the floats
//! that decide a shape (Resize/Upsample scales, Range start/limit/delta, OneHot depth)
//! become constants; data such as a Resize roi or OneHot values stays a run-time input.
//! Such cases are counted separately in the report.

use std::sync::atomic::{AtomicUsize, Ordering};

use edgec::ir::{DType, Graph, Tensor};
use edgec::pipeline::{prepare, specialize_inputs, Bindings};
use edgec::{Error, OpError};

/// Cases compiled with some inputs fixed (reported beside the totals).
pub static SPECIALIZED: AtomicUsize = AtomicUsize::new(0);
/// Of those, cases where a float input had to be fixed.
pub static SPECIALIZED_FLOAT: AtomicUsize = AtomicUsize::new(0);

/// Inputs at most this large may be fixed: shape-like values, not data.
const MAX_ELEMENTS: usize = 64;

fn data_dependent(r: &Result<Graph, Error>) -> bool {
    matches!(r, Err(Error::Node { source: OpError::DataDependent(_), .. }))
}

/// Prepares `g` for compilation; on a data-dependent shape, fixes the small integer and
/// bool inputs (and, if needed, the shape-deciding small float inputs) and retries.
/// Returns the prepared graph and the inputs still to pass.
pub fn prepare_static(g: &Graph, bindings: &Bindings, inputs: &[Tensor]) -> Result<(Graph, Vec<Tensor>), Error> {
    let first = prepare(g.clone(), bindings);
    if !data_dependent(&first) {
        return first.map(|p| (p, inputs.to_vec()));
    }
    let small = |t: &Tensor| t.len() <= MAX_ELEMENTS;
    let is_int = |t: &Tensor| t.dtype().is_int() || t.dtype() == DType::Bool;
    let ints: Vec<usize> = inputs.iter().enumerate().filter(|(_, t)| small(t) && is_int(t)).map(|(i, _)| i).collect();
    let floats: Vec<usize> = inputs.iter().enumerate().filter(|(_, t)| small(t) && t.dtype().is_float()).map(|(i, _)| i).collect();
    let attempt = |fixed: &[usize]| -> Result<Graph, Error> {
        let values: Vec<(String, Tensor)> = fixed.iter().map(|&i| (g.value(g.inputs[i]).name.clone(), inputs[i].clone())).collect();
        let mut specialized = g.clone();
        specialize_inputs(&mut specialized, &values)?;
        let mut bindings = bindings.clone();
        for (name, _) in &values {
            bindings.input_shapes.remove(name);
        }
        prepare(specialized, &bindings)
    };
    let mut fixed = ints.clone();
    let mut result = if fixed.is_empty() { first } else { attempt(&fixed) };
    if data_dependent(&result) && !floats.is_empty() {
        let mut with_floats: Vec<usize> = ints.iter().chain(&floats).copied().collect();
        let all = attempt(&with_floats);
        if all.is_ok() {
            // Release every float input the shapes do not need.
            result = all;
            for f in &floats {
                let without: Vec<usize> = with_floats.iter().copied().filter(|i| i != f).collect();
                let r = attempt(&without);
                if r.is_ok() {
                    with_floats = without;
                    result = r;
                }
            }
            fixed = with_floats;
        }
    }
    let prepared = result?;
    if !fixed.is_empty() {
        SPECIALIZED.fetch_add(1, Ordering::Relaxed);
        if fixed.iter().any(|&i| inputs[i].dtype().is_float()) {
            SPECIALIZED_FLOAT.fetch_add(1, Ordering::Relaxed);
        }
    }
    let rest = inputs.iter().enumerate().filter(|(i, _)| !fixed.contains(i)).map(|(_, t)| t.clone()).collect();
    Ok((prepared, rest))
}
