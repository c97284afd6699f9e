//! tanh, sinh, cosh, their inverses, and erf — built on expm1 / log1p so that nothing
//! cancels near 0.

use super::build::{abs, add, div, gt, lt, min, mul, select, sqrt, sub, Fb};
use super::coeffs::{ERFC_32, ERFC_64, ERFC_EDGES_32, ERFC_EDGES_64, ERF_SMALL_32, ERF_SMALL_64};
use crate::kir::{Expr, Ty};

impl Fb<'_> {
    /// `tanh|x| = t/(t+2)`, `t = expm1(2|x|)`; |x| is capped where tanh rounds to 1.
    pub fn tanh(&mut self, x: Expr) -> Expr {
        let a = min(abs(x.clone()), self.pick(10.0, 20.0));
        let two_a = mul(self.c(2.0), a);
        let t = self.expm1(two_a);
        let t = self.let_(t);
        let r = div(t.clone(), add(t, self.c(2.0)));
        self.copysign(r, x)
    }

    /// `(w, a)`: `w = expm1(|x|/2)`, from which `e^|x| − 1 = w(w+2)` and `e^|x| = (w+1)²`
    /// without overflow before sinh/cosh themselves overflow.
    fn half_expm1(&mut self, x: &Expr) -> (Expr, Expr) {
        let a = self.let_(abs(x.clone()));
        let w = self.expm1(mul(a.clone(), self.c(0.5)));
        (self.let_(w), a)
    }

    /// Above this, `e^-|x|` no longer matters next to `e^|x|`.
    fn hyper_big(&self) -> Expr {
        self.pick(9.0, 22.0)
    }

    pub fn sinh(&mut self, x: Expr) -> Expr {
        let (w, a) = self.half_expm1(&x);
        let t = self.let_(mul(w.clone(), add(w.clone(), self.c(2.0))));
        let small = mul(self.c(0.5), add(t.clone(), div(t.clone(), add(t, self.c(1.0)))));
        let h = self.let_(add(w, self.c(1.0)));
        let large = mul(mul(self.c(0.5), h.clone()), h);
        let r = select(lt(a, self.hyper_big()), small, large);
        self.copysign(r, x)
    }

    pub fn cosh(&mut self, x: Expr) -> Expr {
        let (w, a) = self.half_expm1(&x);
        let h = self.let_(add(w, self.c(1.0)));
        let e = self.let_(mul(h.clone(), h.clone()));
        let small = add(mul(self.c(0.5), e.clone()), div(self.c(0.5), e));
        let large = mul(mul(self.c(0.5), h.clone()), h);
        select(lt(a, self.hyper_big()), small, large)
    }

    /// Where `x + 1` rounds to `x`, so `log1p(x)` is `log(x)` to full precision.
    fn log_big(&self) -> f64 {
        if self.is_f64() { 9007199254740992.0 } else { 16777216.0 }
    }

    /// `asinh|x| = log1p(|x| + x²/(1 + √(1+x²)))`, or `log|x| + ln2` for huge |x|.
    pub fn asinh(&mut self, x: Expr) -> Expr {
        let a = self.let_(abs(x.clone()));
        let big = self.let_ty(Ty::Bool, gt(a.clone(), self.c(self.log_big())));
        let a2 = self.let_(mul(a.clone(), a.clone()));
        let moderate = add(a.clone(), div(a2.clone(), add(self.c(1.0), sqrt(add(self.c(1.0), a2)))));
        let arg = select(big.clone(), a, moderate);
        let l = self.log1p(arg);
        let r = add(l, select(big, self.c(std::f64::consts::LN_2), self.c(0.0)));
        self.copysign(r, x)
    }

    /// `acosh x = log1p(t + √(2t + t²))`, `t = x − 1` (exact near 1), or `log x + ln2`.
    pub fn acosh(&mut self, x: Expr) -> Expr {
        let x = self.let_(x);
        let t = self.let_(sub(x.clone(), self.c(1.0)));
        let big = self.let_ty(Ty::Bool, gt(x.clone(), self.c(self.log_big())));
        let moderate = add(t.clone(), sqrt(add(mul(self.c(2.0), t.clone()), mul(t.clone(), t))));
        let arg = select(big.clone(), x.clone(), moderate);
        let l = self.log1p(arg);
        let r = add(l, select(big, self.c(std::f64::consts::LN_2), self.c(0.0)));
        select(lt(x, self.c(1.0)), self.c(f64::NAN), r)
    }

    /// `atanh|x| = ½·log1p(2|x|/(1 − |x|))`; `1 − |x|` is exact for |x| ≥ ½.
    pub fn atanh(&mut self, x: Expr) -> Expr {
        let a = self.let_(abs(x.clone()));
        let arg = div(mul(self.c(2.0), a.clone()), sub(self.c(1.0), a));
        let l = self.log1p(arg);
        self.copysign(mul(self.c(0.5), l), x)
    }

    /// erf: `x + x·P(x²)` below 1; above, `1 − exp(−x²)·P_i(x − edge_i)` with the piece's
    /// coefficients selected by |x| (erfc's relative error is damped by erfc ≤ 0.16).
    pub fn erf(&mut self, x: Expr) -> Expr {
        let a = self.let_(abs(x.clone()));
        let z = self.let_(mul(a.clone(), a.clone()));
        let small_c: &[f64] = if self.is_f64() { &ERF_SMALL_64 } else { &ERF_SMALL_32 };
        let small = add(a.clone(), mul(a.clone(), self.poly(&z, small_c)));
        let edges: &[f64] = if self.is_f64() { &ERFC_EDGES_64 } else { &ERFC_EDGES_32 };
        let cap = edges[edges.len() - 1];
        let ac = self.let_(min(a.clone(), self.c(cap)));
        // Piece i covers [edges[i], edges[i+1]); the conditions test the upper edges.
        let sel: Vec<Expr> = edges[1..edges.len() - 1].iter().map(|&e| lt(ac.clone(), self.c(e))).collect();
        let sel: Vec<Expr> = sel.into_iter().map(|s| self.let_ty(Ty::Bool, s)).collect();
        let origin = {
            let last = self.c(edges[edges.len() - 2]);
            sel.iter().zip(edges).rev().fold(last, |acc, (s, &e)| select(s.clone(), self.c(e), acc))
        };
        let t = self.let_(sub(ac.clone(), origin));
        let g = if self.is_f64() { self.poly_pieces(&t, &sel, &ERFC_64) } else { self.poly_pieces(&t, &sel, &ERFC_32) };
        let e = self.exp(mul(mul(ac.clone(), ac), self.c(-1.0)));
        let big = sub(self.c(1.0), mul(e, g));
        let r = select(lt(a, self.c(1.0)), small, big);
        self.copysign(r, x)
    }
}
