//! exp, expm1, log, log1p and pow.
//!
//! exp: Cody–Waite reduction `x = n·ln2 + r`, |r| ≤ ln2/2, with `n` found by the
//! round-to-integer "shifter" trick (adding 1.5·2^mant leaves `n` in the low bits, so no
//! float→int conversion is needed), `ln2` split in a short `hi` (so `n·hi` is exact) and
//! a `lo` part, then `exp(r) = 1 + r + r²·P(r)` and a scale by `2^n` built in the exponent
//! bits. log: `x = 2^k·(1+f)` with `1+f` in [√½, √2), then fdlibm's
//! `log(1+f) = f − f²/2 + s·(f²/2 + R(s²))`, `s = f/(2+f)`.

use super::build::{abs, add, and, bin, div, eq, floor, fma, gt, lt, mul, ne, neg, or, select, sqrt, sub, xor, Fb};
use super::coeffs::{EXPM1_32, EXPM1_64, LOG_32, LOG_64};
use crate::kir::{BinOp, Expr, Lit, Ty};

/// ln2 split for Cody–Waite: `n·LN2_HI` is exact for the `n` each precision needs.
const LN2_HI_32: f64 = 0.693145751953125;
const LN2_LO_32: f64 = 1.4286068203094173e-06;
const LN2_HI_64: f64 = 0.6931471803691238;
const LN2_LO_64: f64 = 1.9082149292705877e-10;

impl Fb<'_> {
    fn ln2_hi(&self) -> Expr {
        self.pick(LN2_HI_32, LN2_HI_64)
    }
    fn ln2_lo(&self) -> Expr {
        self.pick(LN2_LO_32, LN2_LO_64)
    }

    /// `(n, p)` with `exp(x + lo) = 2^n·(1 + p)`; `x` must be clamped (no NaN, |n| < 2^20).
    fn exp_reduce(&mut self, x: Expr, lo: Option<Expr>) -> (Expr, Expr) {
        let (nf, n) = self.round_int(mul(x.clone(), self.c(std::f64::consts::LOG2_E)));
        let mut r = sub(sub(x, mul(nf.clone(), self.ln2_hi())), mul(nf, self.ln2_lo()));
        if let Some(lo) = lo {
            r = add(r, lo);
        }
        let r = self.let_(r);
        let coeffs: &[f64] = if self.is_f64() { &EXPM1_64 } else { &EXPM1_32 };
        let p = self.let_(add(r.clone(), mul(mul(r.clone(), r.clone()), self.poly(&r, coeffs))));
        (n, p)
    }

    /// Bounds beyond which exp overflows / underflows to 0 for any rounding.
    fn exp_bounds(&self) -> (f64, f64) {
        if self.is_f64() { (-746.0, 710.0) } else { (-104.0, 89.0) }
    }

    /// exp without the NaN check (NaN gives +inf). Below −150·ln2 (f32; −1075·ln2 for
    /// f64), where `e^x` is under half the smallest subnormal and rounds to +0, the +0 is
    /// selected rather than computed: those lanes compute `e^0` instead, because
    /// scaling down into the subnormal range costs a microcode assist per operation on
    /// x86 (a masked softmax row is mostly `e^-inf`, and ran 5x slower for it).
    pub fn exp(&mut self, x: Expr) -> Expr {
        let (lo, hi) = self.exp_bounds();
        let xc = self.clamp(x, lo, hi);
        let xc = self.let_(xc);
        let zero_below = self.pick(-150.0 * std::f64::consts::LN_2, -1075.0 * std::f64::consts::LN_2);
        let tiny = self.let_ty(Ty::Bool, lt(xc.clone(), zero_below));
        let xs = self.let_(select(tiny.clone(), self.c(0.0), xc));
        let (n, p) = self.exp_reduce(xs, None);
        let v = self.scale(add(self.c(1.0), p), n);
        select(tiny, self.c(0.0), v)
    }

    /// expm1, accurate near 0 (the reduction is exact there, and `2^n·p + (2^n − 1)`
    /// avoids cancellation elsewhere). NaN gives a finite garbage value.
    pub fn expm1(&mut self, x: Expr) -> Expr {
        let bounds = if self.is_f64() { (-40.0, 709.0) } else { (-18.0, 88.0) };
        let xc = self.clamp(x, bounds.0, bounds.1);
        let xc = self.let_(xc);
        let (n, p) = self.exp_reduce(xc, None);
        let s = self.let_(self.pow2(n));
        add(mul(s.clone(), p), sub(s, self.c(1.0)))
    }

    /// `(k, f)` with `x = 2^k·(1 + f)`, `1 + f` in [√½, √2), `k` as a float; `x` positive
    /// (subnormals included). Other inputs give garbage, without undefined behaviour.
    fn log_split(&mut self, x: Expr) -> (Expr, Expr) {
        let f64_ = self.is_f64();
        let (one, sqrt_half, mask) = if f64_ {
            (0x3ff0000000000000_i64, 0x3fe6a09e667f3bcd_i64, 0x000fffffffffffff_i64)
        } else {
            (0x3f800000, 0x3f3504f3, 0x007fffff)
        };
        // Subnormals: scale into the normal range first.
        let (sub_scale, sub_k) = if f64_ { (18014398509481984.0, 54) } else { (16777216.0, 24) };
        let min_normal = if f64_ { f64::MIN_POSITIVE } else { f32::MIN_POSITIVE as f64 };
        let x = self.let_(x);
        let tiny = self.let_ty(Ty::Bool, lt(x.clone(), self.c(min_normal)));
        let xs = self.let_(select(tiny.clone(), mul(x.clone(), self.c(sub_scale)), x));
        let ity = self.ity();
        let ix = self.let_ty(ity, add(self.bits(xs), self.i(one - sqrt_half)));
        let k = sub(bin(BinOp::Shr, ix.clone(), self.i(self.mant())), self.i(self.bias()));
        let k = sub(k, select(tiny, self.i(sub_k), self.i(0)));
        let kf = self.let_(Expr::Cast(self.ty, Box::new(k)));
        let m = self.of_bits(add(and(ix, self.i(mask)), self.i(sqrt_half)));
        let f = self.let_(sub(m, self.c(1.0)));
        (kf, f)
    }

    /// `(s, R)` of fdlibm's log: `s = f/(2+f)`, `2·atanh(s) = 2s + s·R`.
    fn log_series(&mut self, f: &Expr) -> (Expr, Expr) {
        let s = self.let_(div(f.clone(), add(self.c(2.0), f.clone())));
        let z = self.let_(mul(s.clone(), s.clone()));
        let coeffs: &[f64] = if self.is_f64() { &LOG_64 } else { &LOG_32 };
        let r = self.let_(mul(z.clone(), self.poly(&z, coeffs)));
        (s, r)
    }

    /// Natural log with IEEE special cases (log(-x) = NaN, log(0) = -inf, log(inf) = inf).
    pub fn log(&mut self, x: Expr) -> Expr {
        let x = self.let_(x);
        let (k, f) = self.log_split(x.clone());
        let (s, r) = self.log_series(&f);
        let hfsq = self.let_(mul(mul(self.c(0.5), f.clone()), f.clone()));
        // k·ln2_hi − ((hfsq − (s·(hfsq + R) + k·ln2_lo)) − f)
        let inner = add(mul(s, add(hfsq.clone(), r)), mul(k.clone(), self.ln2_lo()));
        let v = sub(mul(k, self.ln2_hi()), sub(sub(hfsq, inner), f));
        let pos = select(lt(x.clone(), self.c(f64::INFINITY)), v, x.clone());
        let nonpos = select(eq(x.clone(), self.c(0.0)), self.c(f64::NEG_INFINITY), self.c(f64::NAN));
        select(gt(x, self.c(0.0)), pos, nonpos)
    }

    /// log1p by Goldberg's trick: `log(u)·x/(u − 1)` with `u = 1 + x` rounded corrects
    /// the rounding of `u` to first order.
    pub fn log1p(&mut self, x: Expr) -> Expr {
        let x = self.let_(x);
        let u = self.let_(add(self.c(1.0), x.clone()));
        let exact = if self.is_f64() { 9007199254740992.0 } else { 16777216.0 };
        let ratio = select(lt(u.clone(), self.c(exact)), div(x.clone(), sub(u.clone(), self.c(1.0))), self.c(1.0));
        let l = self.log(u.clone());
        select(eq(u, self.c(1.0)), x, mul(l, ratio))
    }

    /// `log(x)` as an unevaluated sum `hi + lo` good to ~2^-65 relative, for f64 `pow`
    /// (`x` positive finite; relies on `Fma` being fused).
    fn log_ext(&mut self, x: Expr) -> (Expr, Expr) {
        let (k, f) = self.log_split(x);
        let (s, r) = self.log_series(&f);
        let hf = self.let_(mul(self.c(0.5), f.clone()));
        let hq = self.let_(mul(hf.clone(), f.clone()));
        let hq_lo = fma(hf, f.clone(), neg(hq.clone()));
        let a_hi = self.let_(sub(f.clone(), hq.clone()));
        let a_lo = sub(sub(f, a_hi.clone()), hq.clone());
        let t = mul(s, add(hq, r));
        let lo1 = add(sub(a_lo, hq_lo), t);
        // Two-sum of k·ln2_hi (exact) and a_hi.
        let kh = self.let_(mul(k.clone(), self.ln2_hi()));
        let sum = self.let_(add(kh.clone(), a_hi.clone()));
        let bb = self.let_(sub(sum.clone(), kh.clone()));
        let err = add(sub(kh, sub(sum.clone(), bb.clone())), sub(a_hi, bb));
        let lo = self.let_(add(add(err, lo1), mul(k, self.ln2_lo())));
        let hi = self.let_(add(sum.clone(), lo.clone()));
        let lo = sub(lo, sub(hi.clone(), sum));
        (hi, lo)
    }

    /// `|x|^y` for positive finite `|x|` and finite `y` (other inputs are left to
    /// [`Fb::pow`]'s special cases). f64: extended-precision log, so the error does not grow
    /// with `y·log|x|`; f32: computed in f64.
    fn pow_mag(&mut self, ax: Expr, y: Expr) -> Expr {
        if !self.is_f64() {
            let mut d = self.with_ty(Ty::F64);
            let ax = Expr::Cast(Ty::F64, Box::new(ax));
            let y = Expr::Cast(Ty::F64, Box::new(y));
            let l = d.log(ax);
            let m = d.exp(mul(y, l));
            return Expr::Cast(Ty::F32, Box::new(m));
        }
        let (hi, lo) = self.log_ext(ax);
        let ph = self.let_(mul(y.clone(), hi.clone()));
        let pl = add(fma(y.clone(), hi, neg(ph.clone())), mul(y, lo));
        let (lo_b, hi_b) = self.exp_bounds();
        let phc = self.clamp(ph, lo_b, hi_b);
        let phc = self.let_(phc);
        let (n, p) = self.exp_reduce(phc, Some(pl));
        self.scale(add(self.c(1.0), p), n)
    }

    /// C99 `pow`, special cases included.
    pub fn pow(&mut self, x: Expr, y: Expr) -> Expr {
        if let Expr::Lit(l) = y {
            let v = match l {
                Lit::F32(v) => v as f64,
                Lit::F64(v) => v,
                _ => f64::NAN,
            };
            // Exact (or correctly rounded) shortcuts for common constant exponents.
            if v == 1.0 {
                return x;
            }
            if v == 0.0 {
                return self.c(1.0);
            }
            if v == 2.0 {
                let x = self.let_(x);
                return mul(x.clone(), x);
            }
            if v == -1.0 {
                return div(self.c(1.0), x);
            }
            if v == 3.0 && !self.is_f64() {
                // GELU's cube, in f32 only: the general f32 path goes through f64, which
                // single-precision FPUs (Cortex-M4) run in software. x*x*x with the first
                // product's rounding error added back by one FMA: within an ulp.
                let x = self.let_(x);
                let p = self.let_(mul(x.clone(), x.clone()));
                let err = fma(x.clone(), x.clone(), neg(p.clone()));
                // Where p·x is not finite (overflow, inf, NaN) it is the answer; elsewhere
                // |err·x| < |p·x| cannot overflow.
                let q = self.let_(mul(p.clone(), x.clone()));
                let finite = lt(abs(q.clone()), self.c(f64::INFINITY));
                return select(finite, fma(p, x.clone(), mul(err, x)), q);
            }
            if v == 0.5 {
                // pow(-0, .5) = +0 and pow(-inf, .5) = +inf, unlike sqrt.
                let x = self.let_(x);
                let s = add(sqrt(x.clone()), self.c(0.0));
                return select(eq(x.clone(), self.c(f64::NEG_INFINITY)), self.c(f64::INFINITY), s);
            }
        }
        let x = self.let_(x);
        let y = self.let_(y);
        let ax = self.let_(abs(x.clone()));
        let zero = self.c(0.0);
        let inf = self.c(f64::INFINITY);
        let b = Ty::Bool;
        let yint = self.let_ty(b, eq(floor(y.clone()), y.clone()));
        let half = self.let_(mul(y.clone(), self.c(0.5)));
        let yodd = self.let_ty(b, and(yint.clone(), ne(floor(half.clone()), half)));
        let xneg = self.let_ty(b, lt(x.clone(), zero.clone()));
        let yneg = self.let_ty(b, lt(y.clone(), zero.clone()));
        let mag = self.pow_mag(ax.clone(), y.clone());
        let mag = self.let_(mag);
        // Negative finite x: defined for integer y only.
        let signed = select(yodd.clone(), neg(mag.clone()), mag.clone());
        let r = select(xneg.clone(), select(yint, signed, self.c(f64::NAN)), mag);
        // x = ±0: ±inf / inf for y < 0, ±0 / +0 for y > 0 (signed for odd y).
        let zero_case = select(
            yneg.clone(),
            select(yodd.clone(), self.copysign(inf.clone(), x.clone()), inf.clone()),
            select(yodd.clone(), x.clone(), zero.clone()),
        );
        let r = select(eq(x.clone(), zero.clone()), zero_case, r);
        // x = ±inf: 0 for y < 0, inf for y > 0, negated for x = -inf and odd y.
        let t = self.let_(select(yneg.clone(), zero.clone(), inf.clone()));
        let inf_case = select(and(xneg, yodd), neg(t.clone()), t);
        let r = select(eq(ax.clone(), inf.clone()), inf_case, r);
        // y = ±inf: 1 for |x| = 1, inf when (|x| < 1) == (y < 0), else 0.
        let big = select(xor(lt(ax.clone(), self.c(1.0)), yneg), zero, inf.clone());
        let yinf_case = select(eq(ax.clone(), self.c(1.0)), self.c(1.0), big);
        let r = select(eq(abs(y.clone()), inf), yinf_case, r);
        let r = select(or(ne(x.clone(), x.clone()), ne(y.clone(), y.clone())), add(x.clone(), y.clone()), r);
        select(or(eq(y, self.c(0.0)), eq(x, self.c(1.0))), self.c(1.0), r)
    }
}
