//! Unary math and activations, as scalar KIR expressions.
//!
//! Floats compute in the tensor's KIR type (`F32` for f32/f16/bf16, `F64` for f64) with
//! transcendental `UnOp`s, which `kir::math::expand` later rewrites for the backends;
//! the store rounds f16/bf16 results once. Formulas follow the reference
//! (`ops::elementwise_math::Unary::float`) step by step, including its NaN behaviour
//! (e.g. Relu keeps NaN, Celu maps it to 0 through `f64::max`/`min`). The few ops that
//! accept integers are exact in the integer type, except Shrink, which the reference
//! computes in `f64` and truncates back.

use super::elementwise_num::{cmp, float_to_int, lit, min_max, to_float, Num};
use crate::error::OpError;
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Ty, UnOp};
use crate::ops::elementwise::Unary;

/// The expression for `u` applied to `x` (a variable) of type `n`.
pub fn unary(u: Unary, n: Num, k: &mut KernelBuilder, x: Expr) -> Result<Expr, OpError> {
    if n.is_float() && !matches!(u, Unary::Not | Unary::BitwiseNot) {
        return Ok(float(u, n.ty, k, x));
    }
    integer(u, n, k, x)
}

fn integer(u: Unary, n: Num, k: &mut KernelBuilder, x: Expr) -> Result<Expr, OpError> {
    use Unary::*;
    let zero = n.lit(0.0);
    Ok(match u {
        Neg => e::un(UnOp::Neg, x),
        Not | BitwiseNot if !n.is_float() => e::un(UnOp::Not, x),
        Abs | Relu if n.is_unsigned() => x,
        Abs => e::un(UnOp::Abs, x),
        Relu => min_max(n, true, x, zero),
        Sign if n.is_unsigned() => e::select(e::bin(BinOp::Ne, x, zero.clone()), n.lit(1.0), zero),
        Sign => e::select(
            cmp(n, BinOp::Gt, x.clone(), zero.clone()),
            n.lit(1.0),
            e::select(cmp(n, BinOp::Lt, x, zero.clone()), n.lit(-1.0), zero),
        ),
        Shrink { .. } => {
            let v = k.let_(Ty::F64, to_float(n, Ty::F64, x));
            let r = float(u, Ty::F64, k, e::var(v));
            let r = k.let_(Ty::F64, r);
            float_to_int(k, Ty::F64, e::var(r), n.dtype)
        }
        _ => return Err(OpError::invalid(format!("{u:?} on {} tensors", n.dtype))),
    })
}

/// `u` on a float variable `x` of type `t`.
fn float(u: Unary, t: Ty, k: &mut KernelBuilder, x: Expr) -> Expr {
    use Unary::*;
    let c = |v: f64| lit(t, v);
    let un = |op, a| e::un(op, a);
    let gt = |a, b| e::bin(BinOp::Gt, a, b);
    let lt = |a, b| e::bin(BinOp::Lt, a, b);
    match u {
        Neg => un(UnOp::Neg, x),
        Abs => un(UnOp::Abs, x),
        Sign => e::select(gt(x.clone(), c(0.0)), c(1.0), e::select(lt(x.clone(), c(0.0)), c(-1.0), x)),
        // NaN stays NaN: only `x <= 0` is replaced.
        Relu => e::select(e::bin(BinOp::Le, x.clone(), c(0.0)), c(0.0), x),
        Ceil => un(UnOp::Ceil, x),
        Floor => un(UnOp::Floor, x),
        Round => un(UnOp::Round, x),
        Sqrt => un(UnOp::Sqrt, x),
        Reciprocal => e::div(c(1.0), x),
        Exp => un(UnOp::Exp, x),
        Log => un(UnOp::Log, x),
        Tanh => un(UnOp::Tanh, x),
        Cos => un(UnOp::Cos, x),
        Sin => un(UnOp::Sin, x),
        Tan => un(UnOp::Tan, x),
        Acos => un(UnOp::Acos, x),
        Asin => un(UnOp::Asin, x),
        Atan => un(UnOp::Atan, x),
        Acosh => un(UnOp::Acosh, x),
        Asinh => un(UnOp::Asinh, x),
        Atanh => un(UnOp::Atanh, x),
        Cosh => un(UnOp::Cosh, x),
        Sinh => un(UnOp::Sinh, x),
        Erf => un(UnOp::Erf, x),
        Sigmoid => {
            // exp(-|x|) never overflows: 1 / (1 + e) for x > 0, e / (1 + e) otherwise.
            let ex = k.let_(t, un(UnOp::Exp, un(UnOp::Neg, un(UnOp::Abs, x.clone()))));
            let d = k.let_(t, e::add(c(1.0), e::var(ex)));
            e::select(gt(x, c(0.0)), e::div(c(1.0), e::var(d)), e::div(e::var(ex), e::var(d)))
        }
        Softplus => softplus(t, x),
        Softsign => e::div(x.clone(), e::add(c(1.0), un(UnOp::Abs, x))),
        Mish => e::mul(x.clone(), un(UnOp::Tanh, softplus(t, x))),
        HardSwish => e::mul(x.clone(), hard_sigmoid(t, x, (1.0f32 / 6.0) as f64, 0.5)),
        LeakyRelu { alpha } => e::select(gt(x.clone(), c(0.0)), x.clone(), e::mul(x, c(alpha))),
        Elu { alpha } => e::select(gt(x.clone(), c(0.0)), x.clone(), e::mul(c(alpha), expm1(t, x))),
        Selu { alpha, gamma } => {
            let neg = e::sub(e::mul(un(UnOp::Exp, x.clone()), c(alpha)), c(alpha));
            e::mul(c(gamma), e::select(gt(x.clone(), c(0.0)), x, neg))
        }
        Celu { alpha } => {
            // `f64::max`/`min` return the other operand for NaN: selects, not Max/Min.
            let pos = e::select(gt(x.clone(), c(0.0)), x.clone(), c(0.0));
            let v = k.let_(t, e::mul(c(alpha), expm1(t, e::div(x, c(alpha)))));
            e::add(pos, e::select(lt(e::var(v), c(0.0)), e::var(v), c(0.0)))
        }
        ThresholdedRelu { alpha } => e::select(gt(x.clone(), c(alpha)), x, c(0.0)),
        HardSigmoid { alpha, beta } => hard_sigmoid(t, x, alpha, beta),
        Shrink { bias, lambd } => e::select(
            lt(x.clone(), c(-lambd)),
            e::add(x.clone(), c(bias)),
            e::select(gt(x.clone(), c(lambd)), e::sub(x, c(bias)), c(0.0)),
        ),
        Gelu { tanh: false } => {
            let phi = e::add(c(1.0), un(UnOp::Erf, e::div(x.clone(), c(std::f64::consts::SQRT_2))));
            e::mul(e::mul(c(0.5), x), phi)
        }
        Gelu { tanh: true } => {
            let k0 = c(((2.0 / std::f64::consts::PI) as f32 as f64).sqrt());
            let cube = e::mul(e::mul(x.clone(), x.clone()), x.clone());
            let inner = e::add(x.clone(), e::mul(c(0.044715f32 as f64), cube));
            let phi = e::add(c(1.0), un(UnOp::Tanh, e::mul(k0, inner)));
            e::mul(e::mul(c(0.5), x), phi)
        }
        Swish { alpha } => {
            let s = e::div(c(1.0), e::add(c(1.0), un(UnOp::Exp, e::mul(c(-alpha), x.clone()))));
            e::mul(x, s)
        }
        // Not reached: `unary` sends these (bool and integer ops) to `integer`.
        Not | BitwiseNot => c(f64::NAN),
    }
}

/// `ln(1 + exp(x))`, as the reference computes it (overflowing to inf for large x).
fn softplus(t: Ty, x: Expr) -> Expr {
    e::un(UnOp::Log, e::add(lit(t, 1.0), e::un(UnOp::Exp, x)))
}

/// `exp(x) - 1`, as the reference computes it.
fn expm1(t: Ty, x: Expr) -> Expr {
    e::sub(e::un(UnOp::Exp, x), lit(t, 1.0))
}

/// `clamp(alpha * x + beta, 0, 1)`, NaN propagating.
fn hard_sigmoid(t: Ty, x: Expr, alpha: f64, beta: f64) -> Expr {
    let v = e::add(e::mul(x, lit(t, alpha)), lit(t, beta));
    e::bin(BinOp::Min, e::bin(BinOp::Max, v, lit(t, 0.0)), lit(t, 1.0))
}
