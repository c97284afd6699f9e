//! Node tests often pass shape-deciding values (axes, target shapes, pads, `k` ...) as
//! graph inputs, which a static compile cannot take. When preparation reports a
//! data-dependent shape, the compiled targets retry with the small integer and bool
//! inputs fixed to the test's values — what a real model's initializers would be — and
//! count such cases separately in the report.

use std::sync::atomic::{AtomicUsize, Ordering};

use edgec::ir::{DType, Graph, Tensor};
use edgec::pipeline::{prepare, specialize_inputs, Bindings};
use edgec::{Error, OpError};

/// Cases compiled with some inputs fixed (reported beside the totals).
pub static SPECIALIZED: AtomicUsize = AtomicUsize::new(0);

/// Inputs at most this large may be fixed: shape-like values, not data.
const MAX_ELEMENTS: usize = 64;

/// Prepares `g` for compilation; on a data-dependent shape, fixes the small integer and
/// bool inputs and retries. Returns the prepared graph and the inputs still to pass.
pub fn prepare_static(g: &Graph, bindings: &Bindings, inputs: &[Tensor]) -> Result<(Graph, Vec<Tensor>), Error> {
    match prepare(g.clone(), bindings) {
        Err(Error::Node { source: OpError::DataDependent(_), .. }) => {}
        other => return other.map(|p| (p, inputs.to_vec())),
    }
    let fixable = |t: &Tensor| (t.dtype().is_int() || t.dtype() == DType::Bool) && t.len() <= MAX_ELEMENTS;
    let mut fixed = Vec::new();
    let mut rest = Vec::new();
    for (&v, t) in g.inputs.iter().zip(inputs) {
        if fixable(t) {
            fixed.push((g.value(v).name.clone(), t.clone()));
        } else {
            rest.push(t.clone());
        }
    }
    if fixed.is_empty() {
        return prepare(g.clone(), bindings).map(|p| (p, rest));
    }
    let mut specialized = g.clone();
    specialize_inputs(&mut specialized, &fixed)?;
    let mut bindings = bindings.clone();
    for (name, _) in &fixed {
        bindings.input_shapes.remove(name);
    }
    let prepared = prepare(specialized, &bindings)?;
    SPECIALIZED.fetch_add(1, Ordering::Relaxed);
    Ok((prepared, rest))
}
