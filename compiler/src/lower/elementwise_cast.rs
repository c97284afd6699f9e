//! `Cast`/`CastLike` between the types code generation handles, and the float
//! classification ops `IsNaN`/`IsInf`.
//!
//! A conversion is a load (widening to the source's KIR type), at most one KIR
//! conversion, and a store (narrowing to the target's dtype: f16/bf16 round to nearest
//! even, integers wrap — numpy's `astype` between integers). Float → integer follows
//! the reference's numpy-on-x86 rules ([`float_to_int`]), bool targets test `!= 0`
//! (NaN is true), and bool sources give 0/1.

use super::elementwise_num::{bool_to, float_to_int, lit, ne, to_float, Num};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Ty};

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
