//! Numeric helpers shared by the linalg, conv, pool and quant families: element values
//! as exact integers or `f64`, result tensors built back in the output type, batched
//! matrix products with numpy broadcasting, and overflow-checked shape arithmetic.

use half::{bf16, f16};

use crate::error::OpError;
use crate::ir::{packed, DType, Tensor};

use crate::ops::util::broadcast_shapes;

/// A tensor's elements in the domain its arithmetic is exact in.
#[derive(Clone, Debug)]
pub enum Vals {
    /// Float types, widened to `f64`.
    F(Vec<f64>),
    /// Integer types and bool as two's-complement `i64` (`u64` keeps its bits).
    I(Vec<i64>),
}

/// The elements of `t` as [`Vals`].
pub fn vals(t: &Tensor) -> Vals {
    match int_values(t) {
        Some(v) => Vals::I(v),
        None => Vals::F(t.to_f64_vec()),
    }
}

/// Integer elements as `i64` (`u64` wraps bit-exactly, packed integers are decoded);
/// `None` for float tensors.
pub fn int_values(t: &Tensor) -> Option<Vec<i64>> {
    match t {
        Tensor::U64(a) => Some(a.iter().map(|&x| x as i64).collect()),
        Tensor::Packed(d, a) if d.is_int() => Some(a.iter().map(|&b| packed::decode(*d, b) as i64).collect()),
        Tensor::Packed(..) => None,
        other => other.to_i64_vec(),
    }
}

/// A tensor of `dtype` from `f64` values (rounded to nearest for floats).
pub fn from_f64(dtype: DType, shape: &[usize], v: Vec<f64>) -> Tensor {
    Tensor::from_vec(shape, v).cast(dtype)
}

/// A tensor of `dtype` from `i64` values, truncated to its width (C wrap-around).
pub fn from_i64(dtype: DType, shape: &[usize], v: Vec<i64>) -> Tensor {
    if dtype == DType::U64 {
        return Tensor::from_vec(shape, v.into_iter().map(|x| x as u64).collect::<Vec<u64>>());
    }
    Tensor::from_vec(shape, v).cast(dtype)
}

/// A tensor of `dtype` from [`Vals`].
pub fn from_vals(dtype: DType, shape: &[usize], v: Vals) -> Tensor {
    match v {
        Vals::F(v) => from_f64(dtype, shape, v),
        Vals::I(v) => from_i64(dtype, shape, v),
    }
}

/// Rounds an `f64` to the nearest value of float type `d`: reproduces the rounding of
/// each numpy step the reference implementation takes in that type.
pub fn round_to(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

pub use crate::ops::util::{numel, strides};

/// Shapes of a numpy `matmul`: 1-D operands are promoted (and the added axis dropped
/// from the result).
pub struct MatMulShape {
    pub batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Batch shapes of A and B, aligned to the output batch rank.
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
    pub out: Vec<usize>,
}

pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<MatMulShape, OpError> {
    if a.is_empty() || b.is_empty() {
        return Err(OpError::invalid("MatMul operands must have rank >= 1"));
    }
    let (m, ka) = if a.len() == 1 { (1, a[0]) } else { (a[a.len() - 2], a[a.len() - 1]) };
    let (kb, n) = if b.len() == 1 { (b[0], 1) } else { (b[b.len() - 2], b[b.len() - 1]) };
    if ka != kb {
        return Err(OpError::invalid(format!("MatMul inner dimensions differ: {a:?} x {b:?}")));
    }
    let ab = &a[..a.len().saturating_sub(2)];
    let bb = &b[..b.len().saturating_sub(2)];
    let batch = broadcast_shapes(ab, bb)?;
    let align = |s: &[usize]| {
        let mut v = vec![1; batch.len() - s.len()];
        v.extend_from_slice(s);
        v
    };
    let mut out = batch.clone();
    if a.len() >= 2 {
        out.push(m);
    }
    if b.len() >= 2 {
        out.push(n);
    }
    numel(&out)?;
    Ok(MatMulShape { a_batch: align(ab), b_batch: align(bb), batch, m, k: ka, n, out })
}

/// Offset of batch element `idx` (of the broadcast batch shape) in an operand whose
/// aligned batch shape is `src` (size-1 axes repeat).
fn batch_offset(mut idx: usize, batch: &[usize], src: &[usize]) -> usize {
    let mut off = 0;
    let mut mul = 1;
    for i in (0..batch.len()).rev() {
        let c = idx % batch[i];
        idx /= batch[i];
        if src[i] != 1 {
            off += c * mul;
        }
        mul *= src[i];
    }
    off
}

/// numpy `matmul` of row-major data; `fma(acc, x, y)` accumulates one product.
pub fn matmul<T: Copy>(s: &MatMulShape, a: &[T], b: &[T], zero: T, fma: impl Fn(T, T, T) -> T) -> Vec<T> {
    let nb: usize = s.batch.iter().product();
    let (m, k, n) = (s.m, s.k, s.n);
    let mut out = Vec::with_capacity(nb * m * n);
    for bi in 0..nb {
        let ao = batch_offset(bi, &s.batch, &s.a_batch) * m * k;
        let bo = batch_offset(bi, &s.batch, &s.b_batch) * k * n;
        for i in 0..m {
            for j in 0..n {
                let mut acc = zero;
                for p in 0..k {
                    acc = fma(acc, a[ao + i * k + p], b[bo + p * n + j]);
                }
                out.push(acc);
            }
        }
    }
    out
}

/// `matmul` over [`Vals`] of equal kind: `f64` sums, or wrapping `i64` sums (the low bits
/// of which equal the narrower type's wrap-around result).
pub fn matmul_vals(s: &MatMulShape, a: &Vals, b: &Vals) -> Result<Vals, OpError> {
    Ok(match (a, b) {
        (Vals::F(a), Vals::F(b)) => Vals::F(matmul(s, a, b, 0.0, |acc, x, y| acc + x * y)),
        (Vals::I(a), Vals::I(b)) => Vals::I(matmul(s, a, b, 0, |acc, x: i64, y| acc.wrapping_add(x.wrapping_mul(y)))),
        _ => return Err(OpError::invalid("MatMul operands must have the same element type")),
    })
}

/// Checks that `dtype` is a plain numeric type (no bool, no packed bit patterns).
pub fn expect_numeric(what: &str, dtype: DType) -> Result<(), OpError> {
    if dtype == DType::Bool || dtype.is_packed() {
        return Err(OpError::unsupported(format!("{what} of type {dtype}")));
    }
    Ok(())
}

/// Checks that `dtype` is one of the float types with a Rust element type.
pub fn expect_float(what: &str, dtype: DType) -> Result<(), OpError> {
    if !crate::ops::util::FLOATS.contains(&dtype) {
        return Err(OpError::unsupported(format!("{what} of type {dtype} (edgec handles float types only)")));
    }
    Ok(())
}
