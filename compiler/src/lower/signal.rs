//! Lowering of the signal family: `DFT` and `STFT` as direct O(n²) sums.
//!
//! Each output bin is one accumulation loop over the input samples. The twiddle
//! angle is formed from `(k * m) mod n` in integer arithmetic, as the evaluator does,
//! so it stays accurate in F32 for long transforms. The window generators and
//! `MelWeightMatrix` take only size-like inputs: with constant inputs the graph folds
//! them, with runtime ones their output shape is data-dependent, so neither reaches
//! code generation.

use std::f64::consts::PI;

use super::reduce::{accumulate, flit, konst_ints, loader, operand, opt_operand, single};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::signal::{DftAxis, SignalOp};
use crate::ops::util::norm_axis;

pub fn lower(op: &SignalOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    match op {
        SignalOp::Dft { axis, inverse, onesided } => {
            let axis = match axis {
                DftAxis::Attr(a) => *a,
                DftAxis::Input => opt_scalar(opt_operand(ins, 2), "axis")?.unwrap_or(-2),
            };
            let length = opt_scalar(opt_operand(ins, 1), "dft_length")?;
            lower_dft(cx, operand(ins, 0)?, operand(outs, 0)?, axis, length, *inverse, *onesided)
        }
        SignalOp::Stft { onesided } => lower_stft(cx, ins, operand(outs, 0)?, *onesided),
        SignalOp::Window { .. } | SignalOp::MelWeightMatrix { .. } => {
            Err(OpError::unsupported("window and mel matrices are generated only from constant inputs (folded)"))
        }
    }
}

/// The value of an optional constant scalar input.
fn opt_scalar(o: Option<&Operand>, what: &str) -> Result<Option<i64>, OpError> {
    o.map(|o| single(&konst_ints(o, what)?, what)).transpose()
}

fn float_ty(x: &Operand) -> Result<Ty, OpError> {
    match x.kty()? {
        t if t.is_float() => Ok(t),
        _ => Err(OpError::unsupported(format!("{} signal", x.ty.dtype))),
    }
}

/// A complex accumulator `(re, im)` and the twiddle for `angle = sign * 2π r / n`.
struct Bin {
    re: crate::kir::Var,
    im: crate::kir::Var,
    ft: Ty,
}

impl Bin {
    fn new(k: &mut KernelBuilder, ft: Ty) -> Self {
        Bin { re: k.let_(ft, flit(ft, 0.0)), im: k.let_(ft, flit(ft, 0.0)), ft }
    }

    /// `acc += (a + ib) * e^(i sign 2π r / n)` with `r` an Index expression in `0..n`.
    fn add(&self, k: &mut KernelBuilder, a: Expr, b: Option<Expr>, r: Expr, n: usize, sign: f64) {
        let ft = self.ft;
        let t = k.let_(ft, e::mul(flit(ft, sign * 2.0 * PI / n as f64), e::cast(ft, r)));
        let (c, s) = (k.let_(ft, e::un(UnOp::Cos, e::var(t))), k.let_(ft, e::un(UnOp::Sin, e::var(t))));
        let a = k.let_(ft, a);
        match b {
            None => {
                accumulate(k, self.re, e::mul(e::var(a), e::var(c)));
                accumulate(k, self.im, e::mul(e::var(a), e::var(s)));
            }
            Some(b) => {
                let b = k.let_(ft, b);
                accumulate(k, self.re, e::sub(e::mul(e::var(a), e::var(c)), e::mul(e::var(b), e::var(s))));
                accumulate(k, self.im, e::add(e::mul(e::var(a), e::var(s)), e::mul(e::var(b), e::var(c))));
            }
        }
    }

    /// Stores `(re, im) * scale` at `at` (and `at + 1` when the output is complex).
    fn store(&self, k: &mut KernelBuilder, y: BufId, at: Expr, complex: bool, scale: f64) {
        let scaled = |v| if scale == 1.0 { e::var(v) } else { e::mul(e::var(v), flit(self.ft, scale)) };
        k.store(y, at.clone(), scaled(self.re));
        if complex {
            k.store(y, iadd(at, e::idx(1)), scaled(self.im));
        }
    }
}

/// `(a * b) mod n` on Index values.
fn twiddle_index(a: Expr, b: Expr, n: usize) -> Expr {
    e::bin(BinOp::Rem, e::mul(a, b), e::idx(n as i64))
}

/// Input `[outer..., len, inner..., c]` (`c` 1 = real, 2 = complex), transformed along
/// `axis` with length `n` (zero-padded or truncated). The inverse one-sided transform
/// sums over the Hermitian extension of the half spectrum and keeps the real part.
fn lower_dft(cx: &mut LowerCx, x: &Operand, y: &Operand, axis: i64, length: Option<i64>, inverse: bool, onesided: bool) -> Result<(), OpError> {
    let ft = float_ty(x)?;
    let shape = x.shape();
    let rank = shape.len();
    if rank < 2 || !matches!(shape[rank - 1], 1 | 2) {
        return Err(OpError::invalid(format!("DFT input {shape:?} needs a last axis of 1 (real) or 2 (complex)")));
    }
    let axis = norm_axis(axis, rank)?;
    if axis == rank - 1 {
        return Err(OpError::invalid("DFT axis cannot be the last (real/imaginary) axis"));
    }
    let len = shape[axis];
    let n = match length {
        Some(l) => usize::try_from(l).ok().filter(|&l| l > 0).ok_or_else(|| OpError::invalid(format!("dft_length {l} must be positive")))?,
        None if inverse && onesided => 2 * len.saturating_sub(1),
        None => len,
    };
    if n == 0 {
        return Err(OpError::invalid("DFT of length 0"));
    }
    let (c, out_shape) = (shape[rank - 1], y.shape());
    let (out_len, out_c) = (out_shape[axis], out_shape[rank - 1]);
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..rank - 1].iter().product();
    let (sign, scale) = if inverse { (1.0, 1.0 / n as f64) } else { (-1.0, 1.0) };
    // Element `(o, m, j)` of the input: its real part, and its imaginary part if any.
    let sample = |o: &Expr, m: Expr, j: &Expr, conj: bool| {
        let at = imul(iadd(iadd(imul(o.clone(), (len * inner) as i64), imul(m, inner as i64)), j.clone()), c as i64);
        let im = (c == 2).then(|| {
            let b = e::load(x.buf, iadd(at.clone(), e::idx(1)));
            if conj { e::un(UnOp::Neg, b) } else { b }
        });
        (e::load(x.buf, at), im)
    };
    let mut k = cx.kernel("");
    k.for_shape(&[outer, out_len, inner], |k, ix| {
        let (o, kb, j) = (&ix[0], &ix[1], &ix[2]);
        let bin = Bin::new(k, ft);
        let direct = if inverse && onesided { (n / 2 + 1).min(len) } else { n.min(len) };
        k.for_(direct, |k, m| {
            let (a, b) = sample(o, m.clone(), j, false);
            bin.add(k, a, b, twiddle_index(kb.clone(), m, n), n, sign);
        });
        if inverse && onesided {
            // Bins above n/2 are the conjugates of bins n - m.
            k.for_(n - n / 2 - 1, |k, q| {
                let m = iadd(q, e::idx((n / 2 + 1) as i64));
                let src = k.let_(Ty::Index, e::sub(e::idx(n as i64), m.clone()));
                k.if_(
                    e::bin(BinOp::Lt, e::var(src), e::idx(len as i64)),
                    |k| {
                        let (a, b) = sample(o, e::var(src), j, true);
                        bin.add(k, a, b, twiddle_index(kb.clone(), m, n), n, sign);
                    },
                    |_| {},
                );
            });
        }
        let at = imul(iadd(iadd(imul(o.clone(), (out_len * inner) as i64), imul(kb.clone(), inner as i64)), j.clone()), out_c as i64);
        bin.store(k, y.buf, at, out_c == 2, scale);
    });
    cx.emit(k.finish());
    Ok(())
}

/// A `[batch, length, c]` signal into `[batch, frames, bins, 2]`: each frame, times
/// the optional window, transformed directly.
fn lower_stft(cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand, onesided: bool) -> Result<(), OpError> {
    let x = operand(ins, 0)?;
    let ft = float_ty(x)?;
    let [_, len, c] = *x.shape() else {
        return Err(OpError::invalid(format!("STFT signal {:?} must be [batch, length, 1 or 2]", x.shape())));
    };
    let step = opt_scalar(opt_operand(ins, 1), "frame_step")?.ok_or_else(|| OpError::invalid("STFT needs frame_step"))?;
    let step = usize::try_from(step).ok().filter(|&s| s > 0).ok_or_else(|| OpError::invalid("STFT frame_step must be positive"))?;
    let window = opt_operand(ins, 2);
    let [batch, frames, bins, 2] = *y.shape() else {
        return Err(OpError::invalid(format!("STFT output {:?} must be [batch, frames, bins, 2]", y.shape())));
    };
    let fl = match (opt_scalar(opt_operand(ins, 3), "frame_length")?, window) {
        (Some(l), _) => usize::try_from(l).map_err(|_| OpError::invalid("frame_length must be positive"))?,
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if fl == 0 || fl > len || bins != if onesided { fl / 2 + 1 } else { fl } || c > 2 {
        return Err(OpError::invalid("STFT frame_length does not fit the signal"));
    }
    let load_w = window.map(|w| loader(w, ft)).transpose()?;
    let mut k = cx.kernel("");
    k.for_shape(&[batch, frames, bins], |k, ix| {
        let (b, f, kb) = (&ix[0], &ix[1], &ix[2]);
        let bin = Bin::new(k, ft);
        k.for_(fl, |k, i| {
            let at = imul(iadd(iadd(imul(b.clone(), len as i64), imul(f.clone(), step as i64)), i.clone()), c as i64);
            let w = load_w.as_ref().map(|w| w(i.clone()));
            let windowed = |v: Expr| match &w {
                Some(w) => e::mul(v, w.clone()),
                None => v,
            };
            let a = windowed(e::load(x.buf, at.clone()));
            let im = (c == 2).then(|| windowed(e::load(x.buf, iadd(at, e::idx(1)))));
            bin.add(k, a, im, twiddle_index(kb.clone(), i, fl), fl, -1.0);
        });
        let at = imul(iadd(iadd(imul(b.clone(), (frames * bins) as i64), imul(f.clone(), bins as i64)), kb.clone()), 2);
        bin.store(k, y.buf, at, true, 1.0);
    });
    cx.emit(k.finish());
    Ok(())
}
