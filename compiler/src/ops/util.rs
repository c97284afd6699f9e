//! Helpers the op families share: broadcasting, axis normalisation, input access.

use ndarray::{ArrayD, IxDyn};

use crate::error::OpError;
use crate::ir::{DType, Tensor, TypeInfo};

/// ONNX multidirectional (numpy) broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, OpError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OpError::invalid(format!("shapes {a:?} and {b:?} do not broadcast")));
            }
        };
    }
    Ok(out)
}

/// Broadcasts any number of shapes.
pub fn broadcast_all<'a>(shapes: impl IntoIterator<Item = &'a [usize]>) -> Result<Vec<usize>, OpError> {
    shapes.into_iter().try_fold(Vec::new(), |acc, s| broadcast_shapes(&acc, s))
}

/// A possibly negative axis made into an index in `0..rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(OpError::invalid(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Several axes normalised; duplicates are an error.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(OpError::invalid(format!("axis {a} is repeated in {axes:?}")));
        }
        out.push(n);
    }
    Ok(out)
}

/// Input `i` of an eval call, or an error naming it.
pub fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor, OpError> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError::invalid(format!("input {i} is required but missing")))
}

/// Optional input `i` of an eval call.
pub fn opt_input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}

/// Integer values of input `i` (shape, axes, indices ...).
pub fn input_ints(inputs: &[Option<&Tensor>], i: usize) -> Result<Vec<i64>, OpError> {
    input(inputs, i)?
        .to_i64_vec()
        .ok_or_else(|| OpError::invalid(format!("input {i} must be an integer tensor")))
}

/// Broadcasts an array view to `shape` (numpy rules) and materialises it.
pub fn broadcast_to<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, OpError> {
    a.broadcast(IxDyn(shape))
        .map(|v| v.to_owned())
        .ok_or_else(|| OpError::invalid(format!("shape {:?} does not broadcast to {shape:?}", a.shape())))
}

/// Checks that `t` has one of the allowed element types.
pub fn expect_dtype(what: &str, t: &TypeInfo, allowed: &[DType]) -> Result<(), OpError> {
    if allowed.contains(&t.dtype) {
        Ok(())
    } else {
        Err(OpError::unsupported(format!("{what} of type {} (edgec handles {})", t.dtype, allowed.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "))))
    }
}

/// Every float type with a Rust element type.
pub const FLOATS: &[DType] = &[DType::F32, DType::F64, DType::F16, DType::BF16];

/// Element count of `shape`, an error when it overflows.
pub fn numel(shape: &[usize]) -> Result<usize, OpError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| OpError::invalid(format!("shape {shape:?} has too many elements")))
}

/// Element count of a buffer the evaluator is about to allocate: refuses absurd sizes
/// (from a bad attribute or size input) instead of aborting on allocation. Array
/// libraries reject a shape whose non-empty axes overflow even when another axis is
/// empty, so that is an error too.
pub fn alloc_numel(shape: &[usize]) -> Result<usize, OpError> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&p| p <= isize::MAX as usize);
    let n = if shape.contains(&0) { Some(0) } else { nonzero };
    match (nonzero, n) {
        (Some(_), Some(n)) if n <= 1 << 28 => Ok(n),
        _ => Err(OpError::invalid(format!("shape {shape:?} has too many elements"))),
    }
}

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}
