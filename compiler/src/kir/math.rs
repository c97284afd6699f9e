//! Transcendental functions as KIR primitives.
//!
//! [`expand`] rewrites every non-primitive unary op (exp, log, tanh, erf, sin, ...) and
//! `Pow` on F32/F64 into arithmetic, comparisons, selects and bit manipulation, so both
//! backends compute them bit-identically and need no libm. Methods, limits and measured
//! errors are in docs/math.md; in short: Cody–Waite range reduction plus near-minimax
//! polynomials (`math_coeffs.rs`), fdlibm-style formulas where cancellation matters.
//!
//! Each expansion uses its argument many times, so values are bound to fresh kernel
//! variables: the `Set`s are inserted just before the statement that contained the call
//! (for an `If`, before the `If`; inside a loop body, inside that body), which is sound
//! because KIR expressions have no side effects. Calls nested in calls expand inner first.
//! Code is written once for both precisions through [`build::Fb`].

#[path = "math_build.rs"]
mod build;
#[path = "math_coeffs.rs"]
mod coeffs;
#[path = "math_exp.rs"]
mod exp;
#[path = "math_hyper.rs"]
mod hyper;
#[path = "math_trig.rs"]
mod trig;
#[cfg(test)]
#[path = "math_tests.rs"]
mod tests;

use build::{eq, ne, select, Fb};
use trig::Trig;

use super::{BinOp, Buffer, Expr, Program, Stmt, Ty, UnOp};

/// Rewrites every non-primitive unary op and `Pow` on F32/F64 operands into primitive
/// KIR expressions. Ops on other types (a malformed program) are left for the backend to
/// reject.
pub fn expand(program: &mut Program) {
    let buffers = &program.buffers;
    for k in &mut program.kernels {
        let body = std::mem::take(&mut k.body);
        k.body = Rewriter { buffers, vars: &mut k.vars }.block(body);
    }
}

struct Rewriter<'a> {
    buffers: &'a [Buffer],
    vars: &'a mut Vec<Ty>,
}

impl Rewriter<'_> {
    fn block(&mut self, stmts: Vec<Stmt>) -> Vec<Stmt> {
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            let s = match s {
                Stmt::Loop { var, extent, body } => Stmt::Loop { var, extent, body: self.block(body) },
                Stmt::Set { var, value } => Stmt::Set { var, value: self.expr(value, &mut out) },
                Stmt::Store { buf, index, value } => {
                    let index = self.expr(index, &mut out);
                    Stmt::Store { buf, index, value: self.expr(value, &mut out) }
                }
                Stmt::If { cond, then, els } => {
                    let cond = self.expr(cond, &mut out);
                    Stmt::If { cond, then: self.block(then), els: self.block(els) }
                }
                Stmt::Fail(code) => Stmt::Fail(code),
            };
            out.push(s);
        }
        out
    }

    /// Rewrites `e` bottom-up; bindings go to `pre`.
    fn expr(&mut self, e: Expr, pre: &mut Vec<Stmt>) -> Expr {
        match e {
            Expr::Unary(op, a) => {
                let a = self.expr(*a, pre);
                match self.ty_of(&a) {
                    Some(ty @ (Ty::F32 | Ty::F64)) if !op.is_primitive() => unary(Fb::new(ty, self.vars, pre), op, a),
                    _ => Expr::Unary(op, Box::new(a)),
                }
            }
            Expr::Binary(op, a, b) => {
                let a = self.expr(*a, pre);
                let b = self.expr(*b, pre);
                match self.ty_of(&a) {
                    Some(ty @ (Ty::F32 | Ty::F64)) if op == BinOp::Pow && self.ty_of(&b) == Some(ty) => {
                        Fb::new(ty, self.vars, pre).pow(a, b)
                    }
                    _ => Expr::Binary(op, Box::new(a), Box::new(b)),
                }
            }
            other => other.map_operands(|x| self.expr(x, pre)),
        }
    }

    /// The type of an expression, `None` where the program is malformed.
    fn ty_of(&self, e: &Expr) -> Option<Ty> {
        e.ty(self.vars, self.buffers)
    }
}

/// Expands one transcendental unary op on `x`.
fn unary(mut fb: Fb<'_>, op: UnOp, x: Expr) -> Expr {
    let x = fb.let_(x);
    let r = match op {
        UnOp::Exp => fb.exp(x.clone()),
        UnOp::Log => fb.log(x.clone()),
        UnOp::Tanh => fb.tanh(x.clone()),
        UnOp::Erf => fb.erf(x.clone()),
        UnOp::Sin => fb.trig(Trig::Sin, x.clone()),
        UnOp::Cos => fb.trig(Trig::Cos, x.clone()),
        UnOp::Tan => fb.trig(Trig::Tan, x.clone()),
        UnOp::Atan => fb.atan(x.clone()),
        UnOp::Asin => fb.asin(x.clone()),
        UnOp::Acos => fb.acos(x.clone()),
        UnOp::Sinh => fb.sinh(x.clone()),
        UnOp::Cosh => fb.cosh(x.clone()),
        UnOp::Asinh => fb.asinh(x.clone()),
        UnOp::Acosh => fb.acosh(x.clone()),
        UnOp::Atanh => fb.atanh(x.clone()),
        UnOp::Neg | UnOp::Abs | UnOp::Not | UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc | UnOp::Sxtb16 => {
            return Expr::Unary(op, Box::new(x));
        }
    };
    // Odd functions keep the sign of zero exactly (f(±0) = ±0).
    let odd = matches!(
        op,
        UnOp::Tanh | UnOp::Erf | UnOp::Sin | UnOp::Tan | UnOp::Atan | UnOp::Asin | UnOp::Sinh | UnOp::Asinh | UnOp::Atanh
    );
    let r = if odd { select(eq(x.clone(), fb.c(0.0)), x.clone(), r) } else { r };
    // NaN in, the same NaN out (the expansions clamp NaN away from their bit tricks).
    select(ne(x.clone(), x.clone()), x, r)
}
