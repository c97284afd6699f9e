//! `Fb`, the float expression builder the expansions are written with.
//!
//! It knows the working precision (F32 or F64), so one function body serves both: literals
//! are rounded to the precision, bit patterns use the matching integer type. Every value
//! used more than once is bound to a fresh kernel variable with [`Fb::let_`]; the `Set`s
//! accumulate in `pre`, which the rewriter places before the statement being rewritten.

use crate::kir::{BinOp, Expr, Lit, Stmt, Ty, UnOp, Var};

pub(super) struct Fb<'a> {
    /// The working precision: F32 or F64.
    pub ty: Ty,
    vars: &'a mut Vec<Ty>,
    pre: &'a mut Vec<Stmt>,
}

impl<'a> Fb<'a> {
    pub fn new(ty: Ty, vars: &'a mut Vec<Ty>, pre: &'a mut Vec<Stmt>) -> Self {
        debug_assert!(ty.is_float());
        Fb { ty, vars, pre }
    }

    /// The same kernel, another precision (f32 `pow` is computed in f64).
    pub fn with_ty(&mut self, ty: Ty) -> Fb<'_> {
        Fb { ty, vars: self.vars, pre: self.pre }
    }

    pub fn is_f64(&self) -> bool {
        self.ty == Ty::F64
    }

    /// The integer type of the same width, for bit manipulation.
    pub fn ity(&self) -> Ty {
        if self.is_f64() { Ty::I64 } else { Ty::I32 }
    }

    /// Mantissa bits (23 / 52).
    pub fn mant(&self) -> i64 {
        if self.is_f64() { 52 } else { 23 }
    }

    /// Exponent bias (127 / 1023).
    pub fn bias(&self) -> i64 {
        if self.is_f64() { 1023 } else { 127 }
    }

    /// A float literal, rounded to the working precision.
    pub fn c(&self, v: f64) -> Expr {
        Expr::Lit(if self.is_f64() { Lit::F64(v) } else { Lit::F32(v as f32) })
    }

    /// `v32` in f32, `v64` in f64.
    pub fn pick(&self, v32: f64, v64: f64) -> Expr {
        self.c(if self.is_f64() { v64 } else { v32 })
    }

    /// An integer literal of [`Fb::ity`].
    pub fn i(&self, v: i64) -> Expr {
        Expr::Lit(if self.is_f64() { Lit::I64(v) } else { Lit::I32(v as i32) })
    }

    /// Binds `e` to a fresh variable of the working precision (literals and variables are
    /// returned as they are).
    pub fn let_(&mut self, e: Expr) -> Expr {
        let ty = self.ty;
        self.let_ty(ty, e)
    }

    pub fn let_ty(&mut self, ty: Ty, e: Expr) -> Expr {
        if matches!(e, Expr::Lit(_) | Expr::Var(_)) {
            return e;
        }
        self.vars.push(ty);
        let var = Var(self.vars.len() as u32 - 1);
        self.pre.push(Stmt::Set { var, value: e });
        Expr::Var(var)
    }

    /// `c[0] + x·(c[1] + x·(c[2] + ...))` (Horner).
    pub fn poly(&self, x: &Expr, c: &[f64]) -> Expr {
        let (last, rest) = c.split_last().expect("a polynomial has coefficients");
        rest.iter().rev().fold(self.c(*last), |acc, &k| add(mul(acc, x.clone()), self.c(k)))
    }

    /// Like [`Fb::poly`] for a piecewise polynomial: `sel[j]` true picks `coeffs[j]`
    /// (earlier entries win), else the last set. Selecting coefficients rather than
    /// results evaluates one polynomial instead of all of them.
    pub fn poly_pieces<const N: usize>(&self, x: &Expr, sel: &[Expr], coeffs: &[[f64; N]]) -> Expr {
        let coef = |k: usize| {
            let last = self.c(coeffs[coeffs.len() - 1][k]);
            sel.iter().zip(coeffs).rev().fold(last, |acc, (s, c)| select(s.clone(), self.c(c[k]), acc))
        };
        (0..N - 1).rev().fold(coef(N - 1), |acc, k| add(mul(acc, x.clone()), coef(k)))
    }

    pub fn bits(&self, x: Expr) -> Expr {
        Expr::Bitcast(self.ity(), Box::new(x))
    }

    pub fn of_bits(&self, x: Expr) -> Expr {
        Expr::Bitcast(self.ty, Box::new(x))
    }

    /// `2^n` for an integer `n` in the normal exponent range.
    pub fn pow2(&self, n: Expr) -> Expr {
        self.of_bits(bin(BinOp::Shl, add(n, self.i(self.bias())), self.i(self.mant())))
    }

    /// `v · 2^n` for `n` up to twice the exponent range, in two exact steps, so results
    /// can overflow to infinity or round to subnormals.
    pub fn scale(&mut self, v: Expr, n: Expr) -> Expr {
        let ity = self.ity();
        let n1 = self.let_ty(ity, bin(BinOp::Shr, n.clone(), self.i(1)));
        let n2 = sub(n, n1.clone());
        mul(mul(v, self.pow2(n1)), self.pow2(n2))
    }

    /// `|mag|` with the sign of `sign`.
    pub fn copysign(&self, mag: Expr, sign: Expr) -> Expr {
        let sign_bit = if self.is_f64() { i64::MIN } else { i32::MIN as i64 };
        let m = bin(BinOp::And, self.bits(mag), self.i(!sign_bit));
        let s = bin(BinOp::And, self.bits(sign), self.i(sign_bit));
        self.of_bits(bin(BinOp::Or, m, s))
    }

    /// `(n as float, n as integer)` for `n = round(v)`, |v| < 2^22 (f32) / 2^51 (f64), by
    /// the shifter trick: adding 1.5·2^mant leaves `n` in the low mantissa bits, so no
    /// float→int conversion (with its NaN and overflow hazards) is needed.
    pub fn round_int(&mut self, v: Expr) -> (Expr, Expr) {
        let (shift, shift_bits) = if self.is_f64() {
            (6755399441055744.0, 6755399441055744.0f64.to_bits() as i64)
        } else {
            (12582912.0, 12582912.0f32.to_bits() as i64)
        };
        let t = self.let_(add(v, self.c(shift)));
        let nf = self.let_(sub(t.clone(), self.c(shift)));
        let ity = self.ity();
        let n = self.let_ty(ity, sub(self.bits(t), self.i(shift_bits)));
        (nf, n)
    }

    /// `x` clamped to `[lo, hi]`; NaN becomes `hi` (so no NaN reaches bit tricks).
    pub fn clamp(&mut self, x: Expr, lo: f64, hi: f64) -> Expr {
        let x1 = self.let_(select(lt(x.clone(), self.c(hi)), x, self.c(hi)));
        select(gt(x1.clone(), self.c(lo)), x1, self.c(lo))
    }
}

pub(super) fn add(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Add, a, b)
}
pub(super) fn sub(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Sub, a, b)
}
pub(super) fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Mul, a, b)
}
pub(super) fn div(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Div, a, b)
}
pub(super) fn min(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Min, a, b)
}
pub(super) fn max(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Max, a, b)
}
pub(super) fn lt(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Lt, a, b)
}
pub(super) fn gt(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Gt, a, b)
}
pub(super) fn eq(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Eq, a, b)
}
pub(super) fn ne(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Ne, a, b)
}
pub(super) fn and(a: Expr, b: Expr) -> Expr {
    bin(BinOp::And, a, b)
}
pub(super) fn or(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Or, a, b)
}
pub(super) fn xor(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Xor, a, b)
}
pub(super) fn neg(a: Expr) -> Expr {
    Expr::Unary(UnOp::Neg, Box::new(a))
}
pub(super) fn abs(a: Expr) -> Expr {
    Expr::Unary(UnOp::Abs, Box::new(a))
}
pub(super) fn sqrt(a: Expr) -> Expr {
    Expr::Unary(UnOp::Sqrt, Box::new(a))
}
pub(super) fn floor(a: Expr) -> Expr {
    Expr::Unary(UnOp::Floor, Box::new(a))
}
pub(super) fn trunc(a: Expr) -> Expr {
    Expr::Unary(UnOp::Trunc, Box::new(a))
}
pub(super) fn select(c: Expr, a: Expr, b: Expr) -> Expr {
    Expr::Select(Box::new(c), Box::new(a), Box::new(b))
}
pub(super) fn fma(a: Expr, b: Expr, c: Expr) -> Expr {
    Expr::Fma(Box::new(a), Box::new(b), Box::new(c))
}
pub(super) fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::Binary(op, Box::new(a), Box::new(b))
}
