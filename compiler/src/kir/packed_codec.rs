//! The conversions between packed element codes and KIR values, as integer and bit
//! expressions: what [`super::expand`] puts in place of a packed load or store.
//!
//! Bit-exact with `ir::packed` (the reference evaluator's conversions, which follow
//! `ml_dtypes`): decoding assembles the f32 bit pattern; encoding rounds to nearest even
//! with integer arithmetic on the source's bit pattern (normal range) or with a float
//! `Round` of the value scaled to units of the smallest subnormal (subnormal range). Every
//! operand used more than once is bound to a variable (`Cx::let_`), and no conversion can
//! trap: float → integer casts only ever see small in-range values.

use crate::ir::packed::{MiniFloat, Specials};
use crate::kir::{e, BinOp, Expr, Stmt, Ty, UnOp, Var};

/// Where the expansion binds values: the kernel's variables and the statements placed
/// before the one being rewritten.
pub(super) struct Cx<'a> {
    pub vars: &'a mut Vec<Ty>,
    pub pre: &'a mut Vec<Stmt>,
}

impl Cx<'_> {
    /// `value` in a fresh variable (literals and variables are used as they are).
    pub fn let_(&mut self, ty: Ty, value: Expr) -> Expr {
        if matches!(value, Expr::Lit(_) | Expr::Var(_)) {
            return value;
        }
        self.vars.push(ty);
        let var = Var(self.vars.len() as u32 - 1);
        self.pre.push(Stmt::Set { var, value });
        e::var(var)
    }
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    e::bin(op, a, b)
}

fn i32c(v: i64) -> Expr {
    e::i32(v as i32)
}

/// The f32 value of a small float code (an `I32` in `0 .. 2^(1+e+m)`). NaN codes give
/// the positive quiet NaN, as `packed::decode` gives `f64::NAN`.
pub(super) fn decode(cx: &mut Cx, f: MiniFloat, code: Expr) -> Expr {
    let (eb, mb) = (f.ebits as i64, f.mbits as i64);
    let c = cx.let_(Ty::I32, code);
    let sign = cx.let_(Ty::I32, bin(BinOp::Shl, bin(BinOp::UShr, c.clone(), i32c(eb + mb)), i32c(31)));
    let mag = cx.let_(Ty::I32, bin(BinOp::And, c.clone(), i32c((1 << (eb + mb)) - 1)));
    let exp = bin(BinOp::UShr, mag.clone(), i32c(mb));
    let mant = bin(BinOp::And, mag.clone(), i32c((1 << mb) - 1));
    // Normal: the code's exponent and mantissa fields moved into f32's, rebiased.
    let normal = e::add(bin(BinOp::Shl, mag.clone(), i32c(23 - mb)), i32c((127 - f.bias as i64) << 23));
    // Subnormal: mantissa × 2^(1 - bias - m), exact in f32 (a normal f32 or zero).
    let scale = (2f64).powi(1 - f.bias - mb as i32) as f32;
    let sub = Expr::Bitcast(Ty::I32, Box::new(e::mul(e::cast(Ty::F32, mant.clone()), e::f32(scale))));
    let bits = bin(BinOp::Or, sign.clone(), e::select(bin(BinOp::Eq, exp.clone(), i32c(0)), sub, normal));
    let all_ones = (1i64 << (eb + mb)) - 1;
    let nan = match f.specials {
        Specials::Ieee => Some(bin(
            BinOp::And,
            bin(BinOp::Eq, exp.clone(), i32c((1 << eb) - 1)),
            bin(BinOp::Ne, mant.clone(), i32c(0)),
        )),
        Specials::FiniteNanOnes => Some(bin(BinOp::Eq, mag.clone(), i32c(all_ones))),
        Specials::FiniteNanNegZero => Some(bin(BinOp::Eq, c.clone(), i32c(1 << (eb + mb)))),
        Specials::Finite => None,
    };
    let bits = match f.specials {
        Specials::Ieee => {
            let inf = bin(BinOp::Eq, mag.clone(), i32c(((1 << eb) - 1) << mb));
            e::select(inf, bin(BinOp::Or, sign, i32c(0x7F80_0000)), bits)
        }
        _ => bits,
    };
    let bits = match nan {
        Some(is_nan) => e::select(is_nan, i32c(0x7FC0_0000), bits),
        None => bits,
    };
    Expr::Bitcast(Ty::F32, Box::new(bits))
}

/// The source float format of an encoding: f32 or f64.
struct Src {
    fty: Ty,
    ity: Ty,
    width: i64,
    mbits: i64,
    bias: i64,
}

impl Src {
    fn of(ty: Ty) -> Src {
        match ty {
            Ty::F64 => Src { fty: Ty::F64, ity: Ty::I64, width: 64, mbits: 52, bias: 1023 },
            _ => Src { fty: Ty::F32, ity: Ty::I32, width: 32, mbits: 23, bias: 127 },
        }
    }
    fn i(&self, v: i64) -> Expr {
        if self.ity == Ty::I64 {
            e::i64(v)
        } else {
            e::i32(v as i32)
        }
    }
    fn f(&self, v: f64) -> Expr {
        if self.fty == Ty::F64 {
            e::f64(v)
        } else {
            e::f32(v as f32)
        }
    }
}

/// The code (an `I32`) nearest to `x` (`F32` or `F64`), ties to even, without
/// saturation: out of range gives infinity (E5M2), NaN (E4M3FN and the FNUZ types) or the
/// largest finite value (float4 E2M1, which has neither). NaN gives the format's NaN of
/// the same sign (float4: a zero of the opposite sign, as `ml_dtypes`). This is
/// `MiniFloat::encode(x, false)`; saturation is the lowering's clamp before the store.
pub(super) fn encode(cx: &mut Cx, f: MiniFloat, ty: Ty, x: Expr) -> Expr {
    let s = Src::of(ty);
    let (eb, mb) = (f.ebits as i64, f.mbits as i64);
    let sign_bit = 1i64 << (eb + mb);
    let x = cx.let_(s.fty, x);
    let u = cx.let_(s.ity, Expr::Bitcast(s.ity, Box::new(x.clone())));
    let sign = cx
        .let_(Ty::I32, bin(BinOp::Shl, e::cast(Ty::I32, bin(BinOp::UShr, u.clone(), s.i(s.width - 1))), i32c(eb + mb)));
    let a = cx.let_(s.ity, bin(BinOp::And, u, s.i(i64::MAX >> (64 - s.width))));
    let src_inf = s.i(((1i64 << (s.width - 1 - s.mbits)) - 1) << s.mbits);
    let is_nan = bin(BinOp::Gt, a.clone(), src_inf);
    // Below the smallest normal 2^(1 - bias): units of the smallest subnormal, rounded.
    let min_normal = s.i((s.bias + 1 - f.bias as i64) << s.mbits);
    let small = cx.let_(Ty::Bool, bin(BinOp::Lt, a.clone(), min_normal));
    let units = (2f64).powi(f.bias + mb as i32 - 1);
    let safe = e::select(small.clone(), e::un(UnOp::Abs, x), s.f(0.0));
    let sub = e::cast(Ty::I32, e::un(UnOp::Round, e::mul(safe, s.f(units))));
    // Normal: round the source mantissa to m bits (ties to even; a carry moves into the
    // exponent, as it should), then rebias.
    let sh = s.mbits - mb;
    let half = e::add(s.i((1 << (sh - 1)) - 1), bin(BinOp::And, bin(BinOp::UShr, a.clone(), s.i(sh)), s.i(1)));
    let rounded = bin(BinOp::UShr, e::add(a, half), s.i(sh));
    let normal = cx.let_(s.ity, e::sub(rounded, s.i((s.bias - f.bias as i64) << mb)));
    let max_code = match f.specials {
        Specials::Ieee => (((1i64 << eb) - 2) << mb) | ((1 << mb) - 1),
        Specials::FiniteNanOnes => sign_bit - 2,
        Specials::FiniteNanNegZero | Specials::Finite => sign_bit - 1,
    };
    let over = bin(BinOp::And, e::un(UnOp::Not, small.clone()), bin(BinOp::Gt, normal.clone(), s.i(max_code)));
    let mag = cx.let_(Ty::I32, e::select(small, sub, e::cast(Ty::I32, normal)));
    let or_sign = |v: Expr| bin(BinOp::Or, sign.clone(), v);
    let (over_code, nan_code) = match f.specials {
        Specials::Ieee => {
            (or_sign(i32c(((1 << eb) - 1) << mb)), or_sign(i32c((((1 << eb) - 1) << mb) | (1 << (mb - 1)))))
        }
        Specials::FiniteNanOnes => (or_sign(i32c(sign_bit - 1)), or_sign(i32c(sign_bit - 1))),
        Specials::FiniteNanNegZero => (i32c(sign_bit), i32c(sign_bit)),
        Specials::Finite => (or_sign(i32c(max_code)), bin(BinOp::Xor, sign.clone(), i32c(sign_bit))),
    };
    let finite = match f.specials {
        // No negative zero: a magnitude rounding to 0 is +0 whatever the sign.
        Specials::FiniteNanNegZero => e::select(bin(BinOp::Eq, mag.clone(), i32c(0)), i32c(0), or_sign(mag)),
        _ => or_sign(mag),
    };
    e::select(is_nan, nan_code, e::select(over, over_code, finite))
}
