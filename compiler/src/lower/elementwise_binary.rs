//! Binary arithmetic, bitwise and logic ops, comparisons, and the variadic
//! Sum/Mean/Max/Min, as scalar KIR expressions over the inputs' type.
//!
//! Integers compute exactly in their KIR type and wrap on store, as numpy's fixed-width
//! arithmetic does; the exceptions (division, `u64` order, `Mean`'s float division) go
//! through `elementwise_num`. Floats compute in `F32` (f32/f16/bf16) or `F64`.

use super::elementwise_num::{and, cmp, div_rem, float_to_int, lit, min_max, ne, to_float, wrap, Num};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Lit, Ty};
use crate::ops::elementwise::{Binary, Compare, Variadic};

/// `op(a, b)` for two variables of type `n` (Pow: see [`pow`]).
pub fn binary(op: Binary, n: Num, k: &mut KernelBuilder, a: Expr, b: Expr) -> Result<Expr, OpError> {
    use Binary::*;
    let float = n.is_float();
    Ok(match op {
        Add => e::add(a, b),
        Sub => e::sub(a, b),
        Mul => e::mul(a, b),
        Div if float => e::div(a, b),
        Div => div_rem(k, n, a, b).0,
        Mod { fmod: true } if float => e::bin(BinOp::Rem, a, b),
        Mod { fmod: false } if float => {
            // Not allowed by the spec on floats; the reference's behaviour: `fmod`, moved
            // to the divisor's sign for bf16 only, NaN mapped to 0.
            let r = k.let_(n.ty, e::bin(BinOp::Rem, a, b.clone()));
            let r = if n.dtype == DType::BF16 { e::var(k.let_(n.ty, python_mod_fix(n, e::var(r), b))) } else { e::var(r) };
            e::select(ne(r.clone(), r.clone()), n.lit(0.0), r)
        }
        Mod { fmod } => {
            let r = div_rem(k, n, a, b.clone()).1;
            let r = k.let_(n.ty, r);
            if fmod || n.is_unsigned() {
                e::var(r)
            } else {
                python_mod_fix(n, e::var(r), b)
            }
        }
        BitShift { left: true } => e::bin(BinOp::Shl, a, b),
        BitShift { left: false } => e::bin(BinOp::UShr, a, b),
        BitwiseAnd | And => e::bin(BinOp::And, a, b),
        BitwiseOr | Or => e::bin(BinOp::Or, a, b),
        BitwiseXor | Xor => e::bin(BinOp::Xor, a, b),
        PRelu => e::select(cmp(n, BinOp::Gt, a.clone(), n.lit(0.0)), a.clone(), e::mul(a, b)),
        Pow => return Err(OpError::invalid("Pow is lowered by `pow`")),
    })
}

/// A remainder with the dividend's sign moved to the divisor's (Python's `%`):
/// `r + b` when `r` is nonzero and its sign differs from `b`'s.
fn python_mod_fix(n: Num, r: Expr, b: Expr) -> Expr {
    let zero = n.lit(0.0);
    let lt0 = |x: Expr| e::bin(BinOp::Lt, x, zero.clone());
    let differs = and(ne(r.clone(), zero.clone()), ne(lt0(r.clone()), lt0(b.clone())));
    e::select(differs, e::add(r.clone(), b), r)
}

/// Where `Pow` computes: a float base in its own type (`F32` for f32/f16/bf16, as all
/// float math of those tensors; numpy would promote e.g. f32 ^ i64 to f64, a difference
/// far inside the tolerance). An integer base keeps numpy's promotion
/// (`ops::elementwise_math::pow_promote`), since its result is truncated back to an
/// integer and needs the precision: a float type, or `None` for exact integer powers.
fn pow_float_type(base: Num, exp: Num) -> Option<Ty> {
    if base.is_float() {
        return Some(base.ty);
    }
    if exp.is_float() {
        let narrow = matches!(exp.dtype, DType::F16 | DType::BF16 | DType::F32) && base.dtype.bits() <= 16;
        return Some(if narrow { Ty::F32 } else { Ty::F64 });
    }
    let (b, e) = (base.dtype, exp.dtype);
    let mixed_u64 = (b == DType::U64 && e.is_signed_int()) || (e == DType::U64 && b.is_signed_int());
    mixed_u64.then_some(Ty::F64)
}

/// `a ^ b` for a base of type `nb` and an exponent of type `ne`; the result has the
/// base's type.
pub fn pow(nb: Num, ne: Num, k: &mut KernelBuilder, a: Expr, b: Expr) -> Expr {
    // `x ^ 2` (frequent in decomposed norms) is one correctly rounded multiplication,
    // the value the reference's `powf` rounds to; `BinOp::Pow` would expand to exp/log.
    if nb.is_float() && is_two(&b) {
        return e::mul(a.clone(), a);
    }
    match pow_float_type(nb, ne) {
        Some(t) => {
            let r = e::bin(BinOp::Pow, to_float(nb, t, a), to_float(ne, t, b));
            if nb.is_float() {
                if t == nb.ty {
                    r
                } else {
                    e::cast(nb.ty, r)
                }
            } else {
                let r = k.let_(t, r);
                float_to_int(k, t, e::var(r), nb.dtype)
            }
        }
        None => int_pow(nb, ne, k, a, b),
    }
}

/// Integer power by squaring over every bit of the exponent (unrolled for a constant
/// one), wrapping like numpy.
/// A negative exponent (an error in the reference) gives the truncated real power:
/// 1 for a base of 1, ±1 for -1, else 0.
fn int_pow(nb: Num, ne: Num, k: &mut KernelBuilder, a: Expr, b: Expr) -> Expr {
    let t = nb.ty;
    if let Some(p) = int_lit(&b).filter(|&p| p >= 0) {
        return const_pow(t, k, a, p);
    }
    let acc = k.let_(t, lit(t, 1.0));
    let base = k.let_(t, a.clone());
    let ex = k.let_(ne.ty, b.clone());
    let bits = if ne.ty == Ty::I32 { 32 } else { 64 };
    k.for_(bits, |k, _| {
        let odd = ne_zero(ne.ty, and(e::var(ex), lit(ne.ty, 1.0)));
        k.if_(odd, |k| k.set(acc, e::mul(e::var(acc), e::var(base))), |_| {});
        k.set(base, e::mul(e::var(base), e::var(base)));
        k.set(ex, e::bin(BinOp::UShr, e::var(ex), lit(ne.ty, 1.0)));
    });
    if ne.is_unsigned() {
        return e::var(acc);
    }
    let is = |x: Expr, v: f64| e::bin(BinOp::Eq, x, lit(t, v));
    let odd_exp = ne_zero(ne.ty, and(b.clone(), lit(ne.ty, 1.0)));
    let minus_one = e::select(odd_exp, lit(t, -1.0), lit(t, 1.0));
    let negative = e::select(is(a.clone(), 1.0), lit(t, 1.0), e::select(is(a, -1.0), minus_one, lit(t, 0.0)));
    e::select(e::bin(BinOp::Lt, b, lit(ne.ty, 0.0)), negative, e::var(acc))
}

/// `a ^ p` for a constant `p >= 0`: the squarings unrolled at compile time.
fn const_pow(t: Ty, k: &mut KernelBuilder, a: Expr, mut p: i64) -> Expr {
    let (mut acc, mut base) = (None, a);
    while p > 0 {
        if p & 1 == 1 {
            acc = Some(match acc {
                None => base.clone(),
                Some(acc) => e::mul(acc, base.clone()),
            });
        }
        p >>= 1;
        if p > 0 {
            base = e::var(k.let_(t, e::mul(base.clone(), base)));
        }
    }
    acc.unwrap_or_else(|| lit(t, 1.0))
}

fn int_lit(x: &Expr) -> Option<i64> {
    match x {
        Expr::Lit(Lit::I32(v)) => Some(*v as i64),
        Expr::Lit(Lit::I64(v)) => Some(*v),
        _ => None,
    }
}

fn is_two(x: &Expr) -> bool {
    match x {
        Expr::Lit(Lit::F32(v)) => *v == 2.0,
        Expr::Lit(Lit::F64(v)) => *v == 2.0,
        Expr::Lit(Lit::I32(v)) => *v == 2,
        Expr::Lit(Lit::I64(v)) => *v == 2,
        _ => false,
    }
}

fn ne_zero(t: Ty, x: Expr) -> Expr {
    ne(x, lit(t, 0.0))
}

/// The comparison as a KIR `BinOp`.
pub fn compare(c: Compare, n: Num, a: Expr, b: Expr) -> Expr {
    let op = match c {
        Compare::Equal => BinOp::Eq,
        Compare::Less => BinOp::Lt,
        Compare::LessOrEqual => BinOp::Le,
        Compare::Greater => BinOp::Gt,
        Compare::GreaterOrEqual => BinOp::Ge,
    };
    cmp(n, op, a, b)
}

/// `v` over all inputs (`args`, variables of type `n`), folded left to right like the
/// reference.
pub fn variadic(v: Variadic, n: Num, k: &mut KernelBuilder, args: &[Expr]) -> Result<Expr, OpError> {
    let (first, rest) = args.split_first().ok_or_else(|| OpError::invalid(format!("{v:?} needs at least one input")))?;
    let acc = rest.iter().fold(first.clone(), |acc, x| match v {
        Variadic::Max => min_max(n, true, acc, x.clone()),
        Variadic::Min => min_max(n, false, acc, x.clone()),
        Variadic::Sum | Variadic::Mean => e::add(acc, x.clone()),
    });
    if v != Variadic::Mean {
        return Ok(acc);
    }
    let count = args.len() as f64;
    if n.is_float() {
        return Ok(e::div(acc, n.lit(count)));
    }
    // numpy divides the wrapped integer sum in float64 and converts back.
    let sum = k.let_(n.ty, wrap(n.dtype, acc));
    let mean = k.let_(Ty::F64, e::div(to_float(n, Ty::F64, e::var(sum)), e::f64(count)));
    Ok(float_to_int(k, Ty::F64, e::var(mean), n.dtype))
}

/// `Clip`'s `max(x, lo)` then `min(.., hi)`, NaN propagating.
pub fn clip(n: Num, x: Expr, lo: Option<Expr>, hi: Option<Expr>) -> Expr {
    let x = match lo {
        Some(lo) => min_max(n, true, x, lo),
        None => x,
    };
    match hi {
        Some(hi) => min_max(n, false, x, hi),
        None => x,
    }
}
