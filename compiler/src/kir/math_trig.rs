//! sin, cos, tan (range reduction by π/2) and atan, asin, acos (argument reduction by
//! identities onto small odd polynomials).
//!
//! Reduction: `x = n·π/2 + r`, |r| ≤ π/4, with π/2 split in parts short enough that each
//! `n·part` is exact (Cody–Waite). f64 uses fdlibm's three 33-bit parts: accurate for
//! `n < 2^20`, i.e. |x| < 1.6e6. f32 uses four 8-bit parts and a 24-bit tail, with `n`
//! split in two so every `n·part` is exact; it is accurate for |x| < 1.6e6 too (there
//! `n`, from the f32 product `x·2/π`, can be off by one from the nearest, so |r| reaches
//! 0.95 and the f32 kernels are fitted up to 0.95). Beyond that the reduced argument loses accuracy
//! (no Payne–Hanek reduction); sin and cos are clamped to [-1, 1] so the result stays in
//! range.

use super::build::{abs, add, and, div, eq, gt, max, min, mul, neg, select, sqrt, sub, trunc, Fb};
use super::coeffs::{ASIN_32, ASIN_64, ATAN_32, ATAN_64, COS_32, COS_64, SIN_32, SIN_64};
use crate::kir::{Expr, Ty};

const PIO2_32: [f64; 5] = [1.5703125, 0.000484466552734375, -6.407499313354492e-07, 9.89530235528946e-10, 2.5633440682570896e-12];
const PIO2_64: [f64; 3] = [1.5707963267341256, 6.077100506303966e-11, 2.0222662487959506e-21];

/// π/2 and π/4 as `hi + lo`, for results formed as `constant − small`.
const PI_HI: f64 = std::f64::consts::PI;
const PI_LO: f64 = 1.2246467991473532e-16;
const PIO2_HI: f64 = std::f64::consts::FRAC_PI_2;
const PIO2_LO: f64 = 6.123233995736766e-17;
const PIO4_HI: f64 = std::f64::consts::FRAC_PI_4;
const PIO4_LO: f64 = 3.061616997868383e-17;

/// Which of sin, cos, tan to finish a reduction with.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Trig {
    Sin,
    Cos,
    Tan,
}

impl Fb<'_> {
    /// `const_hi + (v + const_lo)`: adds a constant kept to twice the working precision.
    fn add_const(&self, hi: f64, lo: f64, v: Expr) -> Expr {
        if self.is_f64() { add(self.c(hi), add(v, self.c(lo))) } else { add(self.c(hi), v) }
    }

    /// `(q, r)`: `x = n·π/2 + r` and the quadrant `q = n mod 4`.
    fn trig_reduce(&mut self, x: Expr) -> (Expr, Expr) {
        let (nf, n) = self.round_int(mul(x.clone(), self.c(std::f64::consts::FRAC_2_PI)));
        let ity = self.ity();
        let q = self.let_ty(ity, and(n, self.i(3)));
        let mut r = x;
        if self.is_f64() {
            for p in PIO2_64 {
                r = self.let_(sub(r, mul(nf.clone(), self.c(p))));
            }
            return (q, r);
        }
        // f32: n = n_hi + n_lo with |n_lo| < 2^8, so `n_hi·part` (≤ 14 + 8 bits) and
        // `n_lo·part` are exact for every 8-bit part; the first subtractions are then exact
        // (their results are representable), the later ones round at |r|'s scale.
        // (Split toward zero, so both halves have n's sign and the subtractions cancel.)
        let n_hi = self.let_(mul(trunc(mul(nf.clone(), self.c(1.0 / 256.0))), self.c(256.0)));
        let n_lo = self.let_(sub(nf.clone(), n_hi.clone()));
        let (tail, chunks) = PIO2_32.split_last().expect("π/2 has parts");
        for &p in chunks {
            r = self.let_(sub(sub(r, mul(n_hi.clone(), self.c(p))), mul(n_lo.clone(), self.c(p))));
        }
        (q, self.let_(sub(r, mul(nf, self.c(*tail)))))
    }

    /// `(sin r, cos r)` for |r| ≤ π/4.
    fn sincos_kernel(&mut self, r: Expr) -> (Expr, Expr) {
        let z = self.let_(mul(r.clone(), r.clone()));
        let (sc, cc): (&[f64], &[f64]) = if self.is_f64() { (&SIN_64, &COS_64) } else { (&SIN_32, &COS_32) };
        let s = add(r.clone(), mul(mul(r, z.clone()), self.poly(&z, sc)));
        // fdlibm: w = 1 − z/2 rounded, and what the rounding lost added back.
        let hz = self.let_(mul(self.c(0.5), z.clone()));
        let w = self.let_(sub(self.c(1.0), hz.clone()));
        let tail = mul(mul(z.clone(), z.clone()), self.poly(&z, cc));
        let c = add(w.clone(), add(sub(sub(self.c(1.0), w), hz), tail));
        (self.let_(s), self.let_(c))
    }

    pub fn trig(&mut self, which: Trig, x: Expr) -> Expr {
        let x = self.let_(x);
        let (q, r) = self.trig_reduce(x.clone());
        let (s, c) = self.sincos_kernel(r);
        let odd = self.let_ty(Ty::Bool, eq(and(q.clone(), self.i(1)), self.i(1)));
        let v = match which {
            Trig::Tan => return select(odd, neg(div(c.clone(), s.clone())), div(s, c)),
            Trig::Sin => {
                let v = select(odd, c, s);
                select(eq(and(q, self.i(2)), self.i(2)), neg(v.clone()), v)
            }
            Trig::Cos => {
                let v = select(odd, s, c);
                let q1 = add(q, self.i(1));
                select(eq(and(q1, self.i(2)), self.i(2)), neg(v.clone()), v)
            }
        };
        // Inf gives NaN (through the reduction); huge finite arguments stay in range.
        max(min(v, self.c(1.0)), self.c(-1.0))
    }

    /// atan(|x|) reduced onto |t| ≤ tan(π/8): `1/x` above 1, `(x−1)/(x+1)` around 1.
    pub fn atan(&mut self, x: Expr) -> Expr {
        let a = self.let_(abs(x.clone()));
        let inv = self.let_ty(Ty::Bool, gt(a.clone(), self.c(1.0)));
        let t1 = self.let_(select(inv.clone(), div(self.c(1.0), a.clone()), a));
        let mid = self.let_ty(Ty::Bool, gt(t1.clone(), self.c(0.41421356237309503)));
        let t = select(mid.clone(), div(sub(t1.clone(), self.c(1.0)), add(t1.clone(), self.c(1.0))), t1);
        let t = self.let_(t);
        let z = self.let_(mul(t.clone(), t.clone()));
        let coeffs: &[f64] = if self.is_f64() { &ATAN_64 } else { &ATAN_32 };
        let p = self.let_(add(t.clone(), mul(mul(t, z.clone()), self.poly(&z, coeffs))));
        // result = base + sign·p with base ∈ {0, π/4, π/2}.
        let pick = |fb: &Self, v0: f64, v4: f64, v2: f64| {
            select(inv.clone(), select(mid.clone(), fb.c(v4), fb.c(v2)), select(mid.clone(), fb.c(v4), fb.c(v0)))
        };
        let base_hi = pick(self, 0.0, PIO4_HI, PIO2_HI);
        let base_lo = if self.is_f64() { pick(self, 0.0, PIO4_LO, PIO2_LO) } else { self.c(0.0) };
        let sp = select(inv, neg(p.clone()), p);
        let r = add(base_hi, add(sp, base_lo));
        self.copysign(r, x)
    }

    /// asin via `asin(s)` on |s| ≤ ½: directly below ½, and `π/2 − 2·asin(√((1−|x|)/2))`
    /// above. `acos` shares the kernel.
    fn asin_kernel(&mut self, x: Expr) -> (Expr, Expr, Expr) {
        let a = self.let_(abs(x.clone()));
        let big = self.let_ty(Ty::Bool, gt(a.clone(), self.c(0.5)));
        let z = self.let_(select(big.clone(), mul(sub(self.c(1.0), a), self.c(0.5)), mul(x.clone(), x.clone())));
        let s = self.let_(select(big.clone(), sqrt(z.clone()), x));
        let coeffs: &[f64] = if self.is_f64() { &ASIN_64 } else { &ASIN_32 };
        let p = self.let_(add(s.clone(), mul(mul(s, z.clone()), self.poly(&z, coeffs))));
        (big, p, z)
    }

    pub fn asin(&mut self, x: Expr) -> Expr {
        let x = self.let_(x);
        let (big, p, _) = self.asin_kernel(x.clone());
        // Big: p = asin(√z) ≥ 0, result π/2 − 2p with x's sign; small: p (signed).
        let big_r = self.add_const(PIO2_HI, PIO2_LO, neg(mul(self.c(2.0), p.clone())));
        select(big, self.copysign(big_r, x), p)
    }

    pub fn acos(&mut self, x: Expr) -> Expr {
        let x = self.let_(x);
        let (big, p, _) = self.asin_kernel(x.clone());
        let two_p = mul(self.c(2.0), p.clone());
        let neg_big = self.add_const(PI_HI, PI_LO, neg(two_p.clone()));
        let big_r = select(gt(x, self.c(0.0)), two_p, neg_big);
        let small_r = self.add_const(PIO2_HI, PIO2_LO, neg(p));
        select(big, big_r, small_r)
    }
}
