//! Scalar arithmetic for the elementwise lowering: the KIR expressions that give each
//! ONNX element type the reference's semantics.
//!
//! KIR computes on few types (`Ty::of_storage`): f16/bf16 in `F32`, the narrow integers
//! in `I32`, `u32` and `u64` in `I64`. Most ops are then right as they are, because a
//! store narrows to the buffer's type (wrapping integers, rounding floats). What is not
//! right by itself is collected here:
//! - `u64` lives in `I64` as its bit pattern, so comparisons, `Min`/`Max`, division and
//!   conversions to float need unsigned forms ([`cmp`], [`min_max`], [`div_rem`],
//!   [`to_float`]);
//! - integer division by zero and `MIN / -1` trap on hardware, and the backends emit
//!   KIR `Div`/`Rem` as the machine instruction: [`div_rem`] guards the divisor;
//! - a value held wider than its type must be wrapped before it is used as a number
//!   other than by a store ([`wrap`]).

use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Ty, UnOp};

/// An element type and the KIR type it computes in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num {
    pub dtype: DType,
    pub ty: Ty,
}

impl Num {
    pub fn of(dtype: DType) -> Result<Num, OpError> {
        let ty = Ty::of_storage(dtype)
            .ok_or_else(|| OpError::unsupported(format!("code generation for {dtype} tensors")))?;
        Ok(Num { dtype, ty })
    }

    pub fn is_float(self) -> bool {
        self.ty.is_float()
    }

    pub fn is_unsigned(self) -> bool {
        matches!(self.dtype, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// `u64`: the one type whose values do not all fit its KIR type as numbers.
    pub fn is_u64(self) -> bool {
        self.dtype == DType::U64
    }

    /// `v` as a literal of this type (floats rounded to it, integers truncated).
    pub fn lit(self, v: f64) -> Expr {
        lit(self.ty, v)
    }
}

/// `v` as a literal of type `ty`.
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

pub fn and(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::And, a, b)
}

pub fn or(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Or, a, b)
}

pub fn eq(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Eq, a, b)
}

pub fn ne(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Ne, a, b)
}

/// The comparison `op` of two values of `n` (floats: false when a NaN is compared, as
/// IEEE and the reference agree). `u64` compares with the sign bit flipped, which maps
/// unsigned order onto signed order; `Bool` ordered comparisons go through `I32`.
pub fn cmp(n: Num, op: BinOp, a: Expr, b: Expr) -> Expr {
    if n.is_u64() && !matches!(op, BinOp::Eq | BinOp::Ne) {
        let flip = |x| e::bin(BinOp::Xor, x, e::i64(i64::MIN));
        return e::bin(op, flip(a), flip(b));
    }
    if n.ty == Ty::Bool && !matches!(op, BinOp::Eq | BinOp::Ne) {
        return e::bin(op, bool_to(Ty::I32, a), bool_to(Ty::I32, b));
    }
    e::bin(op, a, b)
}

/// `Min` (`max` false) or `Max` of two values of `n`, NaN-propagating on floats.
pub fn min_max(n: Num, max: bool, a: Expr, b: Expr) -> Expr {
    if n.is_u64() {
        let pick_a = cmp(n, if max { BinOp::Gt } else { BinOp::Lt }, a.clone(), b.clone());
        return e::select(pick_a, a, b);
    }
    e::bin(if max { BinOp::Max } else { BinOp::Min }, a, b)
}

/// A Bool as 1 or 0 of type `ty`.
pub fn bool_to(ty: Ty, b: Expr) -> Expr {
    e::select(b, lit(ty, 1.0), lit(ty, 0.0))
}

/// Integer `a / b` (truncating) and `a % b` (sign of the dividend) as the reference
/// computes them: by zero both give 0, `MIN / -1` wraps to `MIN`. Divisors that would
/// trap are replaced before dividing, so the machine instruction is always safe.
/// Operands must be variables or literals (they are used several times).
pub fn div_rem(k: &mut KernelBuilder, n: Num, a: Expr, b: Expr) -> (Expr, Expr) {
    if n.is_u64() {
        return div_rem_u64(k, a, b);
    }
    let zero = n.lit(0.0);
    let minus_one = n.lit(-1.0);
    let trap = or(eq(b.clone(), zero.clone()), eq(b.clone(), minus_one.clone()));
    let safe = k.let_(n.ty, e::select(trap, n.lit(1.0), b.clone()));
    let q = e::div(a.clone(), e::var(safe));
    let q = e::select(eq(b.clone(), minus_one), e::un(UnOp::Neg, a.clone()), e::select(eq(b.clone(), zero), n.lit(0.0), q));
    // `a % 1` is 0, the answer for both guarded divisors.
    let r = e::bin(BinOp::Rem, a, e::var(safe));
    (q, r)
}

/// Unsigned 64-bit division on `I64` bit patterns with signed instructions only
/// (Hacker's Delight, 9–3): a divisor with its top bit set divides at most once;
/// otherwise divide `a >>> 1` (non-negative), double, and correct by one.
fn div_rem_u64(k: &mut KernelBuilder, a: Expr, b: Expr) -> (Expr, Expr) {
    let n = Num { dtype: DType::U64, ty: Ty::I64 };
    let (zero, one) = (e::i64(0), e::i64(1));
    let big = cmp(Num { dtype: DType::I64, ty: Ty::I64 }, BinOp::Lt, b.clone(), zero.clone());
    let safe = k.let_(Ty::I64, e::select(or(eq(b.clone(), zero.clone()), big.clone()), one.clone(), b.clone()));
    let half = e::bin(BinOp::UShr, a.clone(), one.clone());
    let q0 = e::bin(BinOp::Shl, e::div(half, e::var(safe)), one.clone());
    let q0 = k.let_(Ty::I64, q0);
    let r0 = e::sub(a.clone(), e::mul(e::var(q0), e::var(safe)));
    let small_q = e::add(e::var(q0), bool_to(Ty::I64, cmp(n, BinOp::Ge, r0, e::var(safe))));
    let big_q = bool_to(Ty::I64, cmp(n, BinOp::Ge, a.clone(), b.clone()));
    let q = e::select(eq(b.clone(), zero.clone()), zero.clone(), e::select(big, big_q, small_q));
    let q = k.let_(Ty::I64, q);
    let r = e::select(eq(b.clone(), zero.clone()), zero, e::sub(a, e::mul(e::var(q), b)));
    (e::var(q), r)
}

/// An integer held in a wider KIR type, wrapped to the width of `dtype` (what a store
/// would keep), for use as a number (e.g. before converting to float).
pub fn wrap(dtype: DType, x: Expr) -> Expr {
    let shift = |x, s: i32| e::bin(BinOp::Shr, e::bin(BinOp::Shl, x, e::i32(s)), e::i32(s));
    match dtype {
        DType::I8 => shift(x, 24),
        DType::I16 => shift(x, 16),
        DType::U8 => and(x, e::i32(0xff)),
        DType::U16 => and(x, e::i32(0xffff)),
        DType::U32 => and(x, e::i64(0xffff_ffff)),
        _ => x,
    }
}

/// A value of `n` as a float of type `fty` (rounded to nearest). `u64` values with the
/// top bit set are halved (keeping the low bit, so rounding is unaffected), converted
/// and doubled. Operand used several times: pass a variable.
pub fn to_float(n: Num, fty: Ty, x: Expr) -> Expr {
    match n.ty {
        Ty::Bool => bool_to(fty, x),
        _ if n.is_u64() => {
            let halved = or(e::bin(BinOp::UShr, x.clone(), e::i64(1)), and(x.clone(), e::i64(1)));
            let big = e::mul(e::cast(fty, halved), lit(fty, 2.0));
            e::select(e::bin(BinOp::Lt, x.clone(), e::i64(0)), big, e::cast(fty, x))
        }
        t if t == fty => x,
        _ => e::cast(fty, x),
    }
}

/// A float (of type `fty`) converted to the integer type `to` as the reference does
/// (numpy on x86, `ops::elementwise_num::float_to_int`): truncation toward zero; for
/// 8/16-bit targets values outside `i32`'s range give 0 (then wrap on store); for
/// signed 32/64-bit targets out of range and NaN give `MIN`; `u32`/`u64` take values
/// below `i32`/`i64`'s range and NaN to the sign bit and too-large ones to 0.
/// Operand used several times: pass a variable.
pub fn float_to_int(k: &mut KernelBuilder, fty: Ty, x: Expr, to: DType) -> Expr {
    const TWO31: f64 = 2147483648.0;
    const TWO32: f64 = 4294967296.0;
    const TWO63: f64 = 9223372036854775808.0;
    const TWO64: f64 = 18446744073709551616.0;
    let ge = |x: &Expr, v: f64| e::bin(BinOp::Ge, x.clone(), lit(fty, v));
    let lt = |x: &Expr, v: f64| e::bin(BinOp::Lt, x.clone(), lit(fty, v));
    let within = |lo: f64, hi: f64| and(ge(&x, lo), lt(&x, hi));
    // Truncation is done in float first so the conversions below stay in range.
    let t = k.let_(fty, e::un(UnOp::Trunc, x.clone()));
    let t = e::var(t);
    match to.bits() {
        bits if bits <= 16 => e::select(within(-TWO31, TWO31), e::cast(Ty::I32, t), e::i32(0)),
        32 if to.is_signed_int() => e::select(within(-TWO31, TWO31), e::cast(Ty::I32, t), e::i32(i32::MIN)),
        32 => e::select(
            within(-TWO31, TWO32),
            e::cast(Ty::I64, t),
            e::select(ge(&x, TWO32), e::i64(0), e::i64(1 << 31)),
        ),
        _ if to.is_signed_int() => e::select(within(-TWO63, TWO63), e::cast(Ty::I64, t), e::i64(i64::MIN)),
        _ => {
            // [2^63, 2^64) converts as `t - 2^63` with the sign bit set.
            let high = e::bin(BinOp::Xor, e::cast(Ty::I64, e::sub(t.clone(), lit(fty, TWO63))), e::i64(i64::MIN));
            e::select(
                within(-TWO63, TWO63),
                e::cast(Ty::I64, t),
                e::select(within(TWO63, TWO64), high, e::select(ge(&x, TWO64), e::i64(0), e::i64(i64::MIN))),
            )
        }
    }
}
