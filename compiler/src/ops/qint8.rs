//! The int8 integer kernel: one internal op (`edgec.Int8Kernel`) for a quantised
//! Conv, ConvTranspose, Gemm or MatMul with int8 weights, as the QDQ fold
//! (`passes::qdq_fold`) and static post-training quantisation (`passes::quantize_int8`)
//! produce it. Not an ONNX op: no model names it, so there is no `parse`.
//!
//! Inputs: `x` (int8/uint8, zero point `x_zp`), `w` (int8, symmetric: zero point 0),
//! `bias` (int32, one per output channel, scale `x_scale * w_scale[c]`), `multiplier`
//! and `shift` (int32, one per output channel). Per output element:
//!
//! ```text
//! acc = bias[c] + sum (x - x_zp) * w          exact, int32
//! y   = clamp(y_zp + mbqm(acc, multiplier[c], shift[c]), lo, hi)
//! ```
//!
//! `mbqm` is TFLite's `MultiplyByQuantizedMultiplier` (gemmlowp's saturating rounding
//! doubling high multiply, then a rounding right shift; CMSIS-NN's `arm_nn_requantize`
//! without single rounding): integer-only, so every target gives the same bits.
//! `[lo, hi]` is the output type's range, narrowed by an absorbed Relu or Clip.
//!
//! An absorbed LeakyRelu (slope `alpha > 0`) brings two more inputs, `neg_multiplier`
//! and `neg_shift` (the factor times `alpha`): a negative accumulator is requantised
//! with them instead (`alpha * acc * M` has the sign of `acc`, the scales being
//! positive), so the activation costs one select in the epilogue.

use super::conv::{ConvOp, ConvTranspose, WindowAttrs};
use super::util::{input, opt_input};
use super::{InferCtx, Semantics};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TypeInfo};

/// The float op whose integer form this is.
#[derive(Clone, Debug)]
pub enum Int8Core {
    Conv(WindowAttrs),
    ConvTranspose(ConvTranspose),
    /// `x [..., K] · w` with `w` `[N, K]` (`trans_b`) or `[K, N]`: Gemm (2-D x) and
    /// MatMul by a constant matrix.
    Dense { trans_b: bool },
}

#[derive(Clone, Debug)]
pub struct Int8Kernel {
    pub core: Int8Core,
    pub x_zp: i32,
    pub y_zp: i32,
    /// Output clamp in the quantised domain (the output type's range at most).
    pub lo: i32,
    pub hi: i32,
    /// Output element type: I8 or U8.
    pub out: DType,
}

/// The real multiplier `m > 0` as `m ≈ q * 2^(shift - 31)` with `q` in `[2^30, 2^31)`:
/// TFLite's `QuantizeMultiplier` (frexp, then round half away from zero).
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if !(m > 0.0) || !m.is_finite() {
        return (0, 0);
    }
    let (frac, mut exp) = frexp(m);
    let mut q = (frac * (1u64 << 31) as f64).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        exp += 1;
    }
    if exp < -31 {
        return (0, 0);
    }
    // A multiplier >= 2^30 cannot come from 8-bit scales; saturate rather than wrap.
    (q as i32, exp.min(30))
}

/// `m = frac * 2^exp` with `frac` in `[0.5, 1)`, for finite `m > 0`.
fn frexp(m: f64) -> (f64, i32) {
    let mut exp = m.log2().floor() as i32 + 1;
    let mut frac = m / 2f64.powi(exp);
    // log2 may be off by one next to a power of two.
    while frac >= 1.0 {
        frac /= 2.0;
        exp += 1;
    }
    while frac < 0.5 {
        frac *= 2.0;
        exp -= 1;
    }
    (frac, exp)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)`, ties
/// rounded up (toward +inf, from its nudge and C's truncating division), the one
/// overflowing case saturated.
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // C's truncating division, as gemmlowp writes it.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^e` rounded to nearest, ties away from zero.
pub fn rounding_divide_by_pot(x: i32, e: i32) -> i32 {
    let mask = ((1i64 << e) - 1) as i32;
    let rem = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(rem > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier`.
pub fn mbqm(x: i32, q: i32, shift: i32) -> i32 {
    let (left, right) = (shift.max(0), (-shift).clamp(0, 31));
    rounding_divide_by_pot(srdhm(x.wrapping_shl(left as u32), q), right)
}

impl Int8Kernel {
    /// The float op computing the accumulator (on exact f64 values).
    fn float_core(&self) -> Option<ConvOp> {
        match &self.core {
            Int8Core::Conv(a) => Some(ConvOp::Conv(a.clone())),
            Int8Core::ConvTranspose(t) => Some(ConvOp::ConvTranspose(t.clone())),
            Int8Core::Dense { .. } => None,
        }
    }

    /// Output shape and the number of output channels.
    pub fn out_shape(&self, x: &[usize], w: &[usize]) -> Result<Vec<usize>, OpError> {
        match self.float_core() {
            Some(op) => {
                let ins = [Some(TypeInfo::new(DType::F32, x.to_vec())), Some(TypeInfo::new(DType::F32, w.to_vec()))];
                let ctx = InferCtx { inputs: &ins, consts: &[None, None], n_outputs: 1 };
                Ok(op.infer(&ctx)?.remove(0).shape)
            }
            None => {
                let Int8Core::Dense { trans_b } = self.core else { unreachable!() };
                let (k, n) = match (w, trans_b) {
                    ([n, k], true) | ([k, n], false) => (*k, *n),
                    _ => return Err(OpError::invalid(format!("Int8Kernel weight must be 2-D, got {w:?}"))),
                };
                if x.last() != Some(&k) {
                    return Err(OpError::invalid(format!("Int8Kernel input {x:?} does not end in K = {k}")));
                }
                Ok([&x[..x.len() - 1], &[n]].concat())
            }
        }
    }

    /// The axis of the output that indexes the channel.
    pub fn channel_axis(&self, rank: usize) -> usize {
        match self.core {
            Int8Core::Dense { .. } => rank - 1,
            _ => 1,
        }
    }

    /// The exact int32 accumulators (bias included), row-major in the output shape.
    fn accumulate(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, m: usize) -> Result<Vec<i64>, OpError> {
        let xv: Vec<f64> = x.to_f64_vec().iter().map(|v| v - self.x_zp as f64).collect();
        let wv = w.to_f64_vec();
        let bv = match bias {
            Some(b) => b.to_f64_vec(),
            None => vec![0.0; m],
        };
        if bv.len() != m {
            return Err(OpError::invalid(format!("Int8Kernel bias has {} values, {m} expected", bv.len())));
        }
        let v = match self.float_core() {
            // Products of 8-bit values summed in f64 are exact far beyond int32.
            Some(op) => {
                let (xt, wt, bt) =
                    (Tensor::from_vec(x.shape(), xv), Tensor::from_vec(w.shape(), wv), Tensor::from_vec(&[m], bv));
                op.eval(&[Some(&xt), Some(&wt), Some(&bt)])?.remove(0).to_f64_vec()
            }
            None => {
                let Int8Core::Dense { trans_b } = self.core else { unreachable!() };
                let k = *x.shape().last().unwrap_or(&1);
                let rows = xv.len() / k.max(1);
                let mut out = Vec::with_capacity(rows * m);
                for r in 0..rows {
                    for j in 0..m {
                        let dot: f64 = (0..k)
                            .map(|p| xv[r * k + p] * wv[if trans_b { j * k + p } else { p * m + j }])
                            .sum();
                        out.push(dot + bv[j]);
                    }
                }
                out
            }
        };
        Ok(v.iter().map(|&a| a as i64).collect())
    }
}

fn check_dtypes(x: DType, w: DType, out: DType) -> Result<(), OpError> {
    if !matches!(x, DType::I8 | DType::U8) || w != DType::I8 || !matches!(out, DType::I8 | DType::U8) {
        return Err(OpError::unsupported(format!("Int8Kernel of {x} by {w} to {out}")));
    }
    Ok(())
}

impl Semantics for Int8Kernel {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (x, w) = (ctx.input(0)?, ctx.input(1)?);
        check_dtypes(x.dtype, w.dtype, self.out)?;
        Ok(vec![TypeInfo::new(self.out, self.out_shape(&x.shape, &w.shape)?)])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, w, mult, shift) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 3)?, input(inputs, 4)?);
        check_dtypes(x.dtype(), w.dtype(), self.out)?;
        let shape = self.out_shape(x.shape(), w.shape())?;
        let axis = self.channel_axis(shape.len());
        let m = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let not_int = || OpError::invalid("Int8Kernel multiplier and shift must be int32");
        let (qv, sv) = (mult.to_i64_vec().ok_or_else(not_int)?, shift.to_i64_vec().ok_or_else(not_int)?);
        if qv.len() != m || sv.len() != m {
            return Err(OpError::invalid(format!("Int8Kernel needs {m} multipliers and shifts")));
        }
        let neg = match (opt_input(inputs, 5), opt_input(inputs, 6)) {
            (Some(q), Some(s)) => {
                let (q, s) = (q.to_i64_vec().ok_or_else(not_int)?, s.to_i64_vec().ok_or_else(not_int)?);
                if q.len() != m || s.len() != m {
                    return Err(OpError::invalid(format!("Int8Kernel needs {m} negative-side multipliers and shifts")));
                }
                Some((q, s))
            }
            (None, None) => None,
            _ => return Err(OpError::invalid("Int8Kernel: neg_multiplier and neg_shift go together")),
        };
        let acc = self.accumulate(x, w, opt_input(inputs, 2), m)?;
        let y: Vec<i64> = acc
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let c = (i / inner.max(1)) % m;
                let (q, s) = match &neg {
                    Some((nq, ns)) if a < 0 => (nq[c], ns[c]),
                    _ => (qv[c], sv[c]),
                };
                let v = self.y_zp as i64 + mbqm(a as i32, q as i32, s as i32) as i64;
                v.clamp(self.lo as i64, self.hi as i64)
            })
            .collect();
        Ok(vec![match self.out {
            DType::I8 => Tensor::from_vec(&shape, y.iter().map(|&v| v as i8).collect()),
            _ => Tensor::from_vec(&shape, y.iter().map(|&v| v as u8).collect()),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-point product tracks the real one within one step: the two roundings
    /// (high multiply, then shift) can each add half a step.
    #[test]
    fn multiplier_matches_the_real_product() {
        for &m in &[0.0007, 0.0123, 0.25, 0.5, 0.75, 0.999999, 1.5, 3.0] {
            let (q, s) = quantize_multiplier(m);
            assert!((1 << 30..=i32::MAX).contains(&q), "{m}: {q}");
            for &x in &[-100000, -777, -1, 0, 1, 3, 999, 123456] {
                let got = mbqm(x, q, s) as f64;
                assert!((got - x as f64 * m).abs() <= 1.0, "{x} * {m}: {got}");
            }
        }
    }

    /// TFLite's ties (never to even): the high multiply rounds half up (its nudge
    /// `1 - 2^30` for negative products, then truncation), the shift half away from zero.
    #[test]
    fn ties_round_as_tflite() {
        let (q, s) = quantize_multiplier(0.5);
        assert_eq!(mbqm(5, q, s), 3);
        assert_eq!(mbqm(-5, q, s), -2);
        let (q, s) = quantize_multiplier(0.25);
        assert_eq!(mbqm(6, q, s), 2);
        assert_eq!(mbqm(-6, q, s), -2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(6, 2), 2);
    }
}
