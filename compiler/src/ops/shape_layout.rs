//! Layout machinery shared by the shape and index families.
//!
//! Almost every op of these families only *moves* elements: its output element `k` is
//! element `src[k]` of the (flattened) input. So each op computes that index map from
//! shapes and integer inputs, and one dtype-generic [`take`] does the moving. Ops that
//! mix several tensors (Concat, Pad's fill value, scatters) first [`join`] them into one
//! flat buffer and index into that.
//!
//! [`Values`] lets an op compute its output types once for both inference (constant
//! inputs only, `DataDependent` otherwise) and evaluation (actual inputs).

use ndarray::{ArrayD, IxDyn};

use super::InferCtx;
use crate::error::OpError;
use crate::ir::{DType, Tensor, TypeInfo};

/// What an op sees of its inputs when computing output types: the inference context
/// or the evaluated inputs.
pub trait Values {
    /// The type of input `i`; `None` when omitted.
    fn ty(&self, i: usize) -> Option<TypeInfo>;
    /// Integer values of input `i`: `Ok(None)` when omitted, `DataDependent` when they
    /// are not known (inference of a non-constant input).
    fn ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError>;
    /// The value of input `i` when known.
    fn value(&self, i: usize) -> Option<&Tensor>;

    /// The type of a required input.
    fn req(&self, i: usize) -> Result<TypeInfo, OpError> {
        self.ty(i).ok_or_else(|| OpError::invalid(format!("input {i} is required but missing")))
    }
    /// Integer values of a required input.
    fn req_ints(&self, i: usize, what: &str) -> Result<Vec<i64>, OpError> {
        self.ints(i, what)?.ok_or_else(|| OpError::invalid(format!("input {i} ({what}) is required but missing")))
    }
    /// The value of a required input, `DataDependent` when it is not known.
    fn req_value(&self, i: usize, what: &str) -> Result<&Tensor, OpError> {
        match (self.ty(i), self.value(i)) {
            (None, _) => Err(OpError::invalid(format!("input {i} ({what}) is required but missing"))),
            (Some(_), None) => Err(OpError::DataDependent(format!("input {i} ({what})"))),
            (Some(_), Some(t)) => Ok(t),
        }
    }
}

impl Values for InferCtx<'_> {
    fn ty(&self, i: usize) -> Option<TypeInfo> {
        self.opt_input(i).cloned()
    }
    fn ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        self.const_ints(i, what)
    }
    fn value(&self, i: usize) -> Option<&Tensor> {
        self.konst(i)
    }
}

/// The inputs of an `eval` call, seen as [`Values`].
pub struct Evaluated<'a, 'b>(pub &'b [Option<&'a Tensor>]);

impl Values for Evaluated<'_, '_> {
    fn ty(&self, i: usize) -> Option<TypeInfo> {
        self.value(i).map(Tensor::type_info)
    }
    fn ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.value(i) {
            None => Ok(None),
            Some(t) => t
                .to_i64_vec()
                .map(Some)
                .ok_or_else(|| OpError::invalid(format!("input {i} ({what}) must be an integer tensor"))),
        }
    }
    fn value(&self, i: usize) -> Option<&Tensor> {
        self.0.get(i).copied().flatten()
    }
}

/// Input types alone, as [`Semantics::passthrough`](super::Semantics::passthrough) sees
/// them: no input value is known.
pub struct TypesOnly<'a>(pub &'a [Option<TypeInfo>]);

impl Values for TypesOnly<'_> {
    fn ty(&self, i: usize) -> Option<TypeInfo> {
        self.0.get(i).cloned().flatten()
    }
    fn ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.ty(i) {
            None => Ok(None),
            Some(_) => Err(OpError::DataDependent(format!("input {i} ({what})"))),
        }
    }
    fn value(&self, _i: usize) -> Option<&Tensor> {
        None
    }
}

/// Integers that come from an attribute in old opsets and from an input in newer ones.
#[derive(Clone, Debug, PartialEq)]
pub enum IntsArg {
    /// The values of an attribute; `None` when the attribute is absent.
    Attr(Option<Vec<i64>>),
    /// The values of (optional) input `k`.
    Input(usize),
}

impl IntsArg {
    /// The values, `None` when absent.
    pub fn get(&self, v: &dyn Values, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self {
            IntsArg::Attr(a) => Ok(a.clone()),
            IntsArg::Input(k) => v.ints(*k, what),
        }
    }
}

pub use crate::ops::util::{numel, strides};

/// Calls `f` with every multi-index of `shape`, in row-major order.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize]) -> Result<(), OpError>) -> Result<(), OpError> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx)?;
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < shape[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// For every multi-index of `out_shape` (row-major), the flat source index `f` gives.
pub fn index_map(
    out_shape: &[usize],
    mut f: impl FnMut(&[usize]) -> Result<usize, OpError>,
) -> Result<Vec<usize>, OpError> {
    let mut map = Vec::with_capacity(numel(out_shape)?);
    for_each_index(out_shape, |idx| {
        map.push(f(idx)?);
        Ok(())
    })?;
    Ok(map)
}

/// Flat offset of `idx` for the given strides.
pub fn offset(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

fn take_array<T: Clone>(a: &ArrayD<T>, src: &[usize], shape: &[usize]) -> Result<ArrayD<T>, OpError> {
    let flat: Vec<&T> = a.iter().collect();
    let data = src
        .iter()
        .map(|&i| flat.get(i).map(|&x| x.clone()))
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| OpError::invalid("index out of range in a layout op"))?;
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| OpError::invalid(format!("layout op result: {e}")))
}

/// A tensor of `shape` whose element `k` is the flattened `t`'s element `src[k]`.
pub fn take(t: &Tensor, src: &[usize], shape: &[usize]) -> Result<Tensor, OpError> {
    Ok(crate::map_array!(t, a => take_array(a, src, shape)?))
}

fn join_arrays<'a, T: Clone + 'a>(
    ts: &[&'a Tensor],
    get: impl Fn(&'a Tensor) -> Option<&'a ArrayD<T>>,
) -> Result<ArrayD<T>, OpError> {
    let mut data = Vec::new();
    for t in ts {
        let a = get(t).ok_or_else(|| OpError::invalid("inputs must all have the same element type"))?;
        data.extend(a.iter().cloned());
    }
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), data).map_err(|e| OpError::invalid(e.to_string()))
}

/// The flattened elements of all `ts` (same element type) one after the other.
pub fn join(ts: &[&Tensor]) -> Result<Tensor, OpError> {
    let first = ts.first().ok_or_else(|| OpError::invalid("nothing to join"))?;
    macro_rules! arm {
        ($v:ident) => {
            Tensor::$v(join_arrays(ts, |t| match t {
                Tensor::$v(a) => Some(a),
                _ => None,
            })?)
        };
    }
    Ok(match first {
        Tensor::F32(_) => arm!(F32),
        Tensor::F64(_) => arm!(F64),
        Tensor::F16(_) => arm!(F16),
        Tensor::BF16(_) => arm!(BF16),
        Tensor::I8(_) => arm!(I8),
        Tensor::U8(_) => arm!(U8),
        Tensor::I16(_) => arm!(I16),
        Tensor::U16(_) => arm!(U16),
        Tensor::I32(_) => arm!(I32),
        Tensor::U32(_) => arm!(U32),
        Tensor::I64(_) => arm!(I64),
        Tensor::U64(_) => arm!(U64),
        Tensor::Bool(_) => arm!(Bool),
        Tensor::Packed(d, _) => Tensor::Packed(
            *d,
            join_arrays(ts, |t| match t {
                Tensor::Packed(e, a) if e == d => Some(a),
                _ => None,
            })?,
        ),
    })
}

/// A one-element tensor of `dtype` holding `v` (the zero or one of fill values).
pub fn scalar_of(dtype: DType, v: f64) -> Tensor {
    Tensor::scalar(v).cast(dtype)
}

/// `t` with `fill` appended, and the index of that fill element: for ops whose output
/// is partly input elements and partly a constant (Pad, EyeLike, Trilu ...).
pub fn with_fill(t: &Tensor, fill: &Tensor) -> Result<(Tensor, usize), OpError> {
    if fill.is_empty() {
        return Err(OpError::invalid("the fill value is empty"));
    }
    let fill0 = take(fill, &[0], &[])?;
    Ok((join(&[t, &fill0])?, t.len()))
}

/// Checks that all `tys` have the element type of the first.
pub fn same_dtype(op: &str, tys: &[&TypeInfo]) -> Result<DType, OpError> {
    let d = tys.first().map(|t| t.dtype).ok_or_else(|| OpError::invalid(format!("{op} needs inputs")))?;
    if let Some(t) = tys.iter().find(|t| t.dtype != d) {
        return Err(OpError::invalid(format!("{op}: inputs of types {d} and {} differ", t.dtype)));
    }
    Ok(d)
}

/// A possibly negative index into a dimension of size `dim`, checked.
pub fn norm_index(i: i64, dim: usize, what: &str) -> Result<usize, OpError> {
    let d = dim as i64;
    let j = if i < 0 { i + d } else { i };
    if j < 0 || j >= d {
        return Err(OpError::invalid(format!("{what} {i} is out of range for a dimension of size {dim}")));
    }
    Ok(j as usize)
}

/// Non-negative integers as dimensions.
pub fn to_dims(v: &[i64], what: &str) -> Result<Vec<usize>, OpError> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError::invalid(format!("{what} {v:?} has a negative value"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_join_move_elements() {
        let a = Tensor::from_vec(&[2, 2], vec![1i32, 2, 3, 4]);
        let b = Tensor::from_vec(&[1], vec![9i32]);
        let j = join(&[&a, &b]).unwrap();
        let t = take(&j, &[4, 0, 3], &[3]).unwrap();
        assert_eq!(t, Tensor::from_vec(&[3], vec![9i32, 1, 4]));
        assert!(join(&[&a, &Tensor::from_vec(&[1], vec![1i64])]).is_err());
    }

    #[test]
    fn index_map_is_row_major() {
        let m = index_map(&[2, 3], |i| Ok(i[1] * 2 + i[0])).unwrap();
        assert_eq!(m, vec![0, 2, 4, 1, 3, 5]);
        assert!(index_map(&[0, 3], |_| Ok(0)).unwrap().is_empty());
    }
}
