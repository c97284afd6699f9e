//! `Cast`/`CastLike` between the types code generation handles, and the float
//! classification ops `IsNaN`/`IsInf`.
//!
//! A conversion is a load (widening to the source's KIR type), at most one KIR
//! conversion, and a store (narrowing to the target's dtype: f16/bf16 round to nearest
//! even, integers wrap — numpy's `astype` between integers). Float → integer follows
//! the reference's numpy-on-x86 rules ([`float_to_int`]), bool targets test `!= 0`
//! (NaN is true), and bool sources give 0/1.
//!
//! The packed types (`kir::packed`) load and store like the others — 8/4-bit floats as
//! `F32`, 4/2-bit integers as `I32`, stores rounding to nearest even without saturation
//! or keeping the low bits — so only the rules that differ from that are here ([`cast`]).

use super::elementwise_num::{bool_to, float_to_int, lit, ne, to_float, Num};
use crate::ir::{packed, DType};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Ty, UnOp};

/// `Cast`/`CastLike` of `x` (a variable of type `from`) to `to`, with the reference's
/// rules for the packed types (`ops::elementwise_cast`):
/// - to an 8/4-bit float: the value in F32, or F64 for an f64 source (rounded once, by
///   the store), clamped to the largest finite value when `saturate` (NaN stays NaN;
///   float4 always saturates, which its store does by itself);
/// - from an 8/4-bit float to an integer: NaN gives 0, infinities the target's extremes
///   (`i64`'s for the 4/2-bit targets, then wrapped), finite values truncate and wrap;
/// - from another float to a 4/2-bit integer: truncation, then the low bits; NaN,
///   infinities and values beyond `i64` give 0.
pub fn cast(k: &mut KernelBuilder, from: Num, to: Num, saturate: bool, x: Expr) -> Expr {
    if let Some(f) = packed::minifloat(to.dtype) {
        let fty = if from.ty == Ty::F64 { Ty::F64 } else { Ty::F32 };
        let v = convert(k, from, Num { dtype: DType::F32, ty: fty }, x);
        if !saturate || to.dtype == DType::F4E2M1 {
            return v;
        }
        let v = e::var(k.let_(fty, v));
        let max = f.max_finite();
        let over = e::bin(BinOp::Gt, v.clone(), lit(fty, max));
        let under = e::bin(BinOp::Lt, v.clone(), lit(fty, -max));
        return e::select(over, lit(fty, max), e::select(under, lit(fty, -max), v));
    }
    let small_float = packed::minifloat(from.dtype).is_some();
    if small_float && to.ty.is_int() {
        return small_float_to_int(from, to, x);
    }
    if from.is_float() && to.dtype.bits() < 8 && to.ty.is_int() {
        // |x| < 9.2e18 is false for NaN and the infinities.
        let ok = e::bin(BinOp::Lt, e::un(UnOp::Abs, x.clone()), lit(from.ty, 9.2e18));
        let t = e::un(UnOp::Trunc, e::select(ok, x, lit(from.ty, 0.0)));
        return e::cast(Ty::I32, e::cast(Ty::I64, t));
    }
    convert(k, from, to, x)
}

/// An 8/4-bit float (loaded as F32: at most 57344 in magnitude when finite) to an
/// integer type, as `ml_dtypes` converts it.
fn small_float_to_int(from: Num, to: Num, x: Expr) -> Expr {
    let b = to.dtype.bits() as u32;
    let (lo, hi) = match b {
        _ if b < 8 => (i64::MIN, i64::MAX),
        64 if !to.dtype.is_signed_int() => (0, -1),
        _ if to.dtype.is_signed_int() => (i64::MIN >> (64 - b), i64::MAX >> (64 - b)),
        _ => (0, (1i64 << b) - 1),
    };
    let finite = e::bin(BinOp::Lt, e::un(UnOp::Abs, x.clone()), from.lit(f64::INFINITY));
    let t = e::cast(Ty::I64, e::un(UnOp::Trunc, e::select(finite, x.clone(), from.lit(0.0))));
    let inf = |v: f64| e::bin(BinOp::Eq, x.clone(), from.lit(v));
    let v = e::select(
        ne(x.clone(), x.clone()),
        e::i64(0),
        e::select(inf(f64::INFINITY), e::i64(hi), e::select(inf(f64::NEG_INFINITY), e::i64(lo), t)),
    );
    if to.ty == Ty::I64 {
        v
    } else {
        e::cast(to.ty, v)
    }
}

/// `x` (a variable of type `from`) converted to `to`.
pub fn convert(k: &mut KernelBuilder, from: Num, to: Num, x: Expr) -> Expr {
    match (from.ty, to.ty) {
        (f, t) if f == t => x,
        (_, Ty::Bool) => ne(x, from.lit(0.0)),
        (Ty::Bool, t) => bool_to(t, x),
        (_, t) if t.is_float() => to_float(from, t, x),
        (f, _) if f.is_float() => float_to_int(k, f, x, to.dtype),
        (_, t) => e::cast(t, x),
    }
}

/// `IsNaN`: only NaN compares unequal to itself.
pub fn is_nan(x: Expr) -> Expr {
    ne(x.clone(), x)
}

/// `IsInf` for the selected signs of infinity.
pub fn is_inf(n: Num, x: Expr, positive: bool, negative: bool) -> Expr {
    let hit = |v: f64| e::bin(BinOp::Eq, x.clone(), lit(n.ty, v));
    match (positive, negative) {
        (true, true) => e::bin(BinOp::Eq, e::un(crate::kir::UnOp::Abs, x.clone()), lit(n.ty, f64::INFINITY)),
        (true, false) => hit(f64::INFINITY),
        (false, true) => hit(f64::NEG_INFINITY),
        (false, false) => e::bool(false),
    }
}
