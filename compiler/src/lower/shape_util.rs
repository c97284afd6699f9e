//! Helpers shared by the shape and index lowerings: operand access, constant operands
//! read at compile time, literals of a buffer's element type, signed affine indices
//! and runtime indices checked in the kernel.
//!
//! Both families are data movement: an output element is an input element found by
//! index arithmetic. Whenever the arithmetic is affine in the loop variables it is built
//! as `base + sum(ix[d] * coeff[d])` ([`affine`]) — with signed coefficients, so
//! reversed slices stay affine — and the copy is one loop nest ([`copy_nest`]).

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::Tensor;
use crate::kir::build::{iadd, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Lit, Ty};
use crate::ops::shape::layout::IntsArg;

/// The error code `NAME_run` returns for an index input out of range.
pub const ERR_INDEX_OUT_OF_RANGE: i32 = 6;

/// Input `k`, required.
pub fn input(ins: &[Option<Operand>], k: usize) -> Result<&Operand, OpError> {
    ins.get(k).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("input {k} is required but missing")))
}

/// Input `k` when present.
pub fn opt_input(ins: &[Option<Operand>], k: usize) -> Option<&Operand> {
    ins.get(k).and_then(Option::as_ref)
}

/// Output `k`, required.
pub fn output(outs: &[Option<Operand>], k: usize) -> Result<&Operand, OpError> {
    outs.get(k).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("output {k} is missing")))
}

/// The integer values of input `k`, which must be a constant (shapes, axes, pads ...):
/// `None` when the input is omitted.
pub fn konst_ints(ins: &[Option<Operand>], k: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
    let Some(op) = opt_input(ins, k) else { return Ok(None) };
    let t = op.konst.as_ref().ok_or_else(|| OpError::unsupported(format!("{what} computed at run time")))?;
    t.to_i64_vec().map(Some).ok_or_else(|| OpError::invalid(format!("{what} must be integers")))
}

/// Checks that code generation handles every operand's element type (not the packed
/// 8/4/2-bit types): otherwise the node is unsupported, even for a plain copy.
pub fn check_storage(ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    ins.iter().chain(outs).flatten().try_for_each(|o| o.kty().map(drop))
}

/// Integers from an attribute (old opsets) or a constant input (newer ones).
pub fn ints_arg(ins: &[Option<Operand>], arg: &IntsArg, what: &str) -> Result<Option<Vec<i64>>, OpError> {
    match arg {
        IntsArg::Attr(v) => Ok(v.clone()),
        IntsArg::Input(k) => konst_ints(ins, *k, what),
    }
}

/// A literal of type `ty` with value `v` (0 and 1 fills, indices).
pub fn lit(ty: Ty, v: f64) -> Expr {
    match ty {
        Ty::F32 => e::f32(v as f32),
        Ty::F64 => e::f64(v),
        Ty::I32 => e::i32(v as i32),
        Ty::I64 => e::i64(v as i64),
        Ty::Index => e::idx(v as i64),
        Ty::Bool => e::bool(v != 0.0),
    }
}

/// Element 0 of a constant tensor as a literal of `ty` (the type its dtype loads as),
/// exactly: 64-bit integers do not pass through f64.
pub fn tensor_lit(t: &Tensor, ty: Ty) -> Result<Expr, OpError> {
    if t.is_empty() {
        return Err(OpError::invalid("the fill value is empty"));
    }
    let int0 = || match t {
        Tensor::U64(a) => a.iter().next().map(|&x| x as i64),
        _ => t.to_i64_vec().and_then(|v| v.first().copied()),
    };
    Ok(match ty {
        Ty::I32 => e::i32(int0().ok_or_else(|| OpError::invalid("integer fill expected"))? as i32),
        Ty::I64 | Ty::Index => Expr::Lit(Lit::I64(int0().ok_or_else(|| OpError::invalid("integer fill expected"))?)),
        _ => lit(ty, t.to_f64_vec()[0]),
    })
}

/// `base + sum(ix[d] * coeffs[d])` on Index expressions, folding zeros and ones.
pub fn affine(base: i64, ix: &[Expr], coeffs: &[i64]) -> Expr {
    ix.iter().zip(coeffs).fold(e::idx(base), |acc, (i, &c)| iadd(acc, times(i.clone(), c)))
}

/// `i * c` on an Index expression, folding literals (negative `c` allowed).
pub fn times(i: Expr, c: i64) -> Expr {
    match (&i, c) {
        (_, 0) => e::idx(0),
        (_, 1) => i,
        (Expr::Lit(Lit::Index(x)), _) => e::idx(x * c),
        _ => e::mul(i, e::idx(c)),
    }
}

/// Row-major strides of `shape` as signed coefficients.
pub fn coeffs(shape: &[usize]) -> Vec<i64> {
    crate::kir::build::strides(shape).into_iter().map(|s| s as i64).collect()
}

/// Index comparisons and arithmetic.
pub fn lt(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Lt, a, b)
}
pub fn ge(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Ge, a, b)
}
pub fn or(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Or, a, b)
}

/// Whether indices `ind` into a dimension of `dim` entries need the run-time check: not
/// when they are constants, which are checked here instead (out of range, the node is
/// invalid, as the reference evaluator says).
pub fn needs_check(ind: &Operand, dim: usize) -> Result<bool, OpError> {
    let Some(t) = &ind.konst else { return Ok(true) };
    let n = dim as i64;
    let vals = t.to_i64_vec().ok_or_else(|| OpError::invalid("indices must be integers"))?;
    match vals.iter().find(|&&i| i < -n || i >= n) {
        Some(i) => Err(OpError::invalid(format!("index {i} is out of range for a dimension of size {dim}"))),
        None => Ok(false),
    }
}

/// A runtime index `raw` (any integer type) into a dimension of `dim` entries: made an
/// Index, negative values counted from the end, then (when `check`) checked — out of
/// range, the kernel fails with [`ERR_INDEX_OUT_OF_RANGE`]. Returns the variable
/// holding the position.
pub fn checked_index(k: &mut KernelBuilder, raw: Expr, dim: usize, check: bool) -> Expr {
    let n = e::idx(dim as i64);
    let j = k.let_(Ty::Index, e::cast(Ty::Index, raw));
    k.set(j, e::select(lt(e::var(j), e::idx(0)), e::add(e::var(j), n.clone()), e::var(j)));
    if check {
        k.if_(or(lt(e::var(j), e::idx(0)), ge(e::var(j), n)), |k| k.fail(ERR_INDEX_OUT_OF_RANGE), |_| {});
    }
    e::var(j)
}

/// One side of a copy: a buffer and the affine index `base + sum(ix * coeffs)` into it.
pub struct Access {
    pub buf: BufId,
    pub base: i64,
    pub coeffs: Vec<i64>,
}

impl Access {
    /// The whole buffer of `shape`, row-major from element 0.
    pub fn dense(buf: BufId, shape: &[usize]) -> Access {
        Access { buf, base: 0, coeffs: coeffs(shape) }
    }
}

/// `dst[...] = src[...]` over the iteration space `shape`, both sides affine.
pub fn copy_nest(k: &mut KernelBuilder, shape: &[usize], src: Access, dst: Access) {
    k.for_shape(shape, |k, ix| {
        let v = e::load(src.buf, affine(src.base, ix, &src.coeffs));
        k.store(dst.buf, affine(dst.base, ix, &dst.coeffs), v);
    });
}

/// `dst[i] = value` for every element of a buffer of `len` elements.
pub fn fill(k: &mut KernelBuilder, dst: BufId, len: usize, value: Expr) {
    k.for_(len, |k, i| k.store(dst, i, value));
}

/// Emits `out = in` for a node whose kernels then update `out` in place (scatters).
pub fn copy_into(cx: &mut LowerCx, src: &Operand, dst: &Operand) {
    let mut k = cx.kernel("copy");
    k.for_(dst.len(), |k, i| k.store(dst.buf, i.clone(), e::load(src.buf, i)));
    cx.emit(k.finish());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_folds_units_and_zeros() {
        let i = e::var(crate::kir::Var(0));
        assert_eq!(affine(0, &[i.clone(), i.clone()], &[0, 1]), i);
        assert_eq!(affine(5, &[e::idx(2)], &[-3]), e::idx(-1));
    }
}
