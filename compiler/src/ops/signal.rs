//! The signal family: `DFT`, `STFT`, the window generators (`HannWindow`,
//! `HammingWindow`, `BlackmanWindow`) and `MelWeightMatrix`.
//!
//! Complex tensors are real tensors with a trailing axis of 2 (real, imaginary); a
//! trailing axis of 1 holds a real signal. Transforms are direct O(n²) sums in `f64`.

use std::f64::consts::PI;

use super::reduce::{from_floats, int_values, numel};
use super::util::{expect_dtype, input, norm_axis, opt_input, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum SignalOp {
    Dft { axis: DftAxis, inverse: bool, onesided: bool },
    Stft { onesided: bool },
    Window { kind: WindowKind, periodic: bool, dtype: DType },
    MelWeightMatrix { dtype: DType },
}

/// The transformed axis of `DFT`: an attribute in opset 17, input 2 (default -2) from 20.
#[derive(Clone, Debug)]
pub enum DftAxis {
    Attr(i64),
    Input,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let r = match ctx.op_type {
        "DFT" => parse_dft(ctx),
        "STFT" => ctx.int_or("onesided", 1).map(|o| SignalOp::Stft { onesided: o != 0 }),
        "HannWindow" => parse_window(ctx, WindowKind::Hann),
        "HammingWindow" => parse_window(ctx, WindowKind::Hamming),
        "BlackmanWindow" => parse_window(ctx, WindowKind::Blackman),
        "MelWeightMatrix" => output_datatype(ctx).map(|dtype| SignalOp::MelWeightMatrix { dtype }),
        _ => return None,
    };
    Some(r.map(Op::Signal))
}

fn parse_dft(ctx: &NodeCtx) -> Result<SignalOp, OpError> {
    let axis = if ctx.opset >= 20 { DftAxis::Input } else { DftAxis::Attr(ctx.int_or("axis", 1)?) };
    Ok(SignalOp::Dft { axis, inverse: ctx.int_or("inverse", 0)? != 0, onesided: ctx.int_or("onesided", 0)? != 0 })
}

fn parse_window(ctx: &NodeCtx, kind: WindowKind) -> Result<SignalOp, OpError> {
    Ok(SignalOp::Window { kind, periodic: ctx.int_or("periodic", 1)? != 0, dtype: output_datatype(ctx)? })
}

/// The `output_datatype` attribute (default float32); any numeric type is allowed.
fn output_datatype(ctx: &NodeCtx) -> Result<DType, OpError> {
    let code = ctx.int_or("output_datatype", 1)?;
    match i32::try_from(code).ok().and_then(DType::from_onnx) {
        Some(d) if !d.is_packed() && d != DType::Bool => Ok(d),
        _ => Err(OpError::unsupported(format!("output_datatype {code} ({})", DType::onnx_code_name(code as i32)))),
    }
}

impl Semantics for SignalOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            SignalOp::Dft { axis, inverse, onesided } => {
                let x = ctx.input(0)?;
                expect_dtype("DFT input", x, FLOATS)?;
                let axis = match axis {
                    DftAxis::Attr(a) => *a,
                    DftAxis::Input => opt_scalar(ctx.const_ints(2, "axis")?, "axis")?.unwrap_or(-2),
                };
                let length = opt_scalar(ctx.const_ints(1, "dft_length")?, "dft_length")?;
                let plan = DftPlan::new(&x.shape, axis, length, *inverse, *onesided)?;
                Ok(vec![TypeInfo::new(x.dtype, plan.out_shape())])
            }
            SignalOp::Stft { onesided } => {
                let x = ctx.input(0)?;
                expect_dtype("STFT signal", x, FLOATS)?;
                let step = opt_scalar(ctx.const_ints(1, "frame_step")?, "frame_step")?;
                let step = step.ok_or_else(|| OpError::invalid("STFT needs frame_step"))?;
                let frame_length = opt_scalar(ctx.const_ints(3, "frame_length")?, "frame_length")?;
                let window = ctx.opt_input(2).map(|w| w.shape.as_slice());
                let plan = StftPlan::new(&x.shape, step, window, frame_length, *onesided)?;
                Ok(vec![TypeInfo::new(x.dtype, plan.out_shape())])
            }
            SignalOp::Window { dtype, .. } => {
                let size = opt_scalar(ctx.const_ints(0, "size")?, "size")?;
                Ok(vec![TypeInfo::new(*dtype, vec![window_size(size)?])])
            }
            SignalOp::MelWeightMatrix { dtype } => {
                let mel_bins = opt_scalar(ctx.const_ints(0, "num_mel_bins")?, "num_mel_bins")?;
                let dft_length = opt_scalar(ctx.const_ints(1, "dft_length")?, "dft_length")?;
                let (mel_bins, dft_length) = mel_sizes(mel_bins, dft_length)?;
                Ok(vec![TypeInfo::new(*dtype, vec![dft_length / 2 + 1, mel_bins])])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            SignalOp::Dft { axis, inverse, onesided } => {
                let x = input(inputs, 0)?;
                expect_dtype("DFT input", &x.type_info(), FLOATS)?;
                let axis = match axis {
                    DftAxis::Attr(a) => *a,
                    DftAxis::Input => opt_scalar(opt_ints(inputs, 2)?, "axis")?.unwrap_or(-2),
                };
                let length = opt_scalar(opt_ints(inputs, 1)?, "dft_length")?;
                let plan = DftPlan::new(x.shape(), axis, length, *inverse, *onesided)?;
                Ok(vec![from_floats(x.dtype(), &plan.out_shape(), plan.run(&x.to_f64_vec()))])
            }
            SignalOp::Stft { onesided } => {
                let x = input(inputs, 0)?;
                expect_dtype("STFT signal", &x.type_info(), FLOATS)?;
                let step = opt_scalar(opt_ints(inputs, 1)?, "frame_step")?;
                let step = step.ok_or_else(|| OpError::invalid("STFT needs frame_step"))?;
                let window = opt_input(inputs, 2);
                let frame_length = opt_scalar(opt_ints(inputs, 3)?, "frame_length")?;
                let plan = StftPlan::new(x.shape(), step, window.map(|w| w.shape()), frame_length, *onesided)?;
                let window = window.map(|w| w.to_f64_vec()).unwrap_or_else(|| vec![1.0; plan.frame_length]);
                Ok(vec![from_floats(x.dtype(), &plan.out_shape(), plan.run(&x.to_f64_vec(), &window))])
            }
            SignalOp::Window { kind, periodic, dtype } => {
                let size = window_size(opt_scalar(opt_ints(inputs, 0)?, "size")?)?;
                Ok(vec![from_floats(*dtype, &[size], window(*kind, *periodic, size))])
            }
            SignalOp::MelWeightMatrix { dtype } => eval_mel(inputs, *dtype),
        }
    }
}

/// Integer values of optional input `i`.
fn opt_ints(inputs: &[Option<&Tensor>], i: usize) -> Result<Option<Vec<i64>>, OpError> {
    opt_input(inputs, i).map(int_values).transpose()
}

/// The value of an optional scalar (or one-element) integer input.
fn opt_scalar(v: Option<Vec<i64>>, what: &str) -> Result<Option<i64>, OpError> {
    match v.as_deref() {
        None => Ok(None),
        Some([k]) => Ok(Some(*k)),
        Some(_) => Err(OpError::invalid(format!("{what} must be a single integer"))),
    }
}

/// A length that must be positive.
fn positive(v: i64, what: &str) -> Result<usize, OpError> {
    usize::try_from(v).ok().filter(|&n| n > 0).ok_or_else(|| OpError::invalid(format!("{what} {v} must be positive")))
}

// ---------------------------------------------------------------------------------
// DFT

/// A checked DFT: input `[outer..., len, inner..., c]` (`c` 1 = real, 2 = complex)
/// transformed along `axis` with length `n`.
struct DftPlan {
    shape: Vec<usize>,
    axis: usize,
    n: usize,
    inverse: bool,
    onesided: bool,
}

impl DftPlan {
    fn new(shape: &[usize], axis: i64, length: Option<i64>, inverse: bool, onesided: bool) -> Result<Self, OpError> {
        let rank = shape.len();
        if rank < 2 || !matches!(shape[rank - 1], 1 | 2) {
            return Err(OpError::invalid(format!("DFT input {shape:?} needs a last axis of 1 (real) or 2 (complex)")));
        }
        let axis = norm_axis(axis, rank)?;
        if axis == rank - 1 {
            return Err(OpError::invalid("DFT axis cannot be the last (real/imaginary) axis"));
        }
        let n = match length {
            Some(l) => positive(l, "dft_length")?,
            // An inverse one-sided transform restores an even-length real signal.
            None if inverse && onesided => positive(2 * (shape[axis] as i64 - 1), "implied dft_length")?,
            None => shape[axis],
        };
        Ok(DftPlan { shape: shape.to_vec(), axis, n, inverse, onesided })
    }

    /// Complex output for the forward and full inverse transforms; real (last axis 1)
    /// for the inverse one-sided one.
    fn out_shape(&self) -> Vec<usize> {
        let mut s = self.shape.clone();
        let last = s.len() - 1;
        s[self.axis] = if self.onesided && !self.inverse { self.n / 2 + 1 } else { self.n };
        s[last] = if self.inverse && self.onesided { 1 } else { 2 };
        s
    }

    fn run(&self, v: &[f64]) -> Vec<f64> {
        let rank = self.shape.len();
        let c = self.shape[rank - 1];
        let len = self.shape[self.axis];
        let outer: usize = self.shape[..self.axis].iter().product();
        let inner: usize = self.shape[self.axis + 1..rank - 1].iter().product();
        let out_shape = self.out_shape();
        let (out_len, out_c) = (out_shape[self.axis], out_shape[rank - 1]);
        let mut out = vec![0.0; outer * out_len * inner * out_c];
        for o in 0..outer {
            for j in 0..inner {
                let z: Vec<(f64, f64)> = (0..len)
                    .map(|i| {
                        let p = ((o * len + i) * inner + j) * c;
                        (v[p], if c == 2 { v[p + 1] } else { 0.0 })
                    })
                    .collect();
                for (k, (re, im)) in self.lane(&z).into_iter().enumerate().take(out_len) {
                    let p = ((o * out_len + k) * inner + j) * out_c;
                    out[p] = re;
                    if out_c == 2 {
                        out[p + 1] = im;
                    }
                }
            }
        }
        out
    }

    /// One lane: `z` zero-padded or truncated to `n`, then transformed.
    fn lane(&self, z: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let n = self.n;
        if self.inverse && self.onesided {
            // Hermitian extension of the one-sided spectrum; the real part of its
            // inverse is the signal (imaginary parts of the self-conjugate bins drop out).
            let at = |k: usize| z.get(k).copied().unwrap_or((0.0, 0.0));
            let full: Vec<(f64, f64)> =
                (0..n).map(|k| if k <= n / 2 { at(k) } else { let (re, im) = at(n - k); (re, -im) }).collect();
            return dft(&full, n, true).into_iter().map(|(re, _)| (re, 0.0)).collect();
        }
        let padded: Vec<(f64, f64)> = (0..n).map(|k| z.get(k).copied().unwrap_or((0.0, 0.0))).collect();
        dft(&padded, n, self.inverse)
    }
}

/// The direct DFT of `z` (length `n`); the inverse includes the 1/n factor.
fn dft(z: &[(f64, f64)], n: usize, inverse: bool) -> Vec<(f64, f64)> {
    let sign = if inverse { 1.0 } else { -1.0 };
    let scale = if inverse { 1.0 / n as f64 } else { 1.0 };
    (0..n)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for (m, &(a, b)) in z.iter().enumerate() {
                // Reducing k*m mod n keeps the angle accurate for long transforms.
                let t = sign * 2.0 * PI * ((k * m) % n) as f64 / n as f64;
                let (s, c) = t.sin_cos();
                re += a * c - b * s;
                im += a * s + b * c;
            }
            (re * scale, im * scale)
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// STFT

/// A checked STFT of a `[batch, length, c]` signal into `[batch, frames, bins, 2]`.
struct StftPlan {
    shape: Vec<usize>,
    step: usize,
    frame_length: usize,
    frames: usize,
    onesided: bool,
}

impl StftPlan {
    fn new(shape: &[usize], step: i64, window: Option<&[usize]>, frame_length: Option<i64>, onesided: bool) -> Result<Self, OpError> {
        let [_, len, c] = shape else {
            return Err(OpError::invalid(format!("STFT signal {shape:?} must be [batch, length, 1 or 2]")));
        };
        if !matches!(c, 1 | 2) {
            return Err(OpError::invalid(format!("STFT signal {shape:?} must end in 1 (real) or 2 (complex)")));
        }
        let step = positive(step, "frame_step")?;
        let frame_length = match (frame_length, window) {
            (Some(l), _) => positive(l, "frame_length")?,
            (None, Some([w])) => *w,
            (None, None) => *len,
            (None, Some(w)) => return Err(OpError::invalid(format!("STFT window {w:?} must be 1-D"))),
        };
        if window.is_some_and(|w| w != [frame_length]) {
            return Err(OpError::invalid(format!("STFT window {window:?} does not match frame_length {frame_length}")));
        }
        if frame_length == 0 || frame_length > *len {
            return Err(OpError::invalid(format!("STFT frame_length {frame_length} does not fit the signal length {len}")));
        }
        let frames = 1 + (len - frame_length) / step;
        Ok(StftPlan { shape: shape.to_vec(), step, frame_length, frames, onesided })
    }

    fn bins(&self) -> usize {
        if self.onesided { self.frame_length / 2 + 1 } else { self.frame_length }
    }

    fn out_shape(&self) -> Vec<usize> {
        vec![self.shape[0], self.frames, self.bins(), 2]
    }

    fn run(&self, v: &[f64], window: &[f64]) -> Vec<f64> {
        let (len, c) = (self.shape[1], self.shape[2]);
        let bins = self.bins();
        let mut out = Vec::with_capacity(self.shape[0] * self.frames * bins * 2);
        for b in 0..self.shape[0] {
            for f in 0..self.frames {
                let frame: Vec<(f64, f64)> = (0..self.frame_length)
                    .map(|i| {
                        let p = (b * len + f * self.step + i) * c;
                        let im = if c == 2 { v[p + 1] } else { 0.0 };
                        (v[p] * window[i], im * window[i])
                    })
                    .collect();
                for (re, im) in dft(&frame, self.frame_length, false).into_iter().take(bins) {
                    out.extend([re, im]);
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------
// Windows

fn window_size(size: Option<i64>) -> Result<usize, OpError> {
    let size = size.ok_or_else(|| OpError::invalid("window size is required"))?;
    usize::try_from(size).map_err(|_| OpError::invalid(format!("window size {size} must not be negative")))
}

/// The window of `size` points; `periodic` divides by `size` instead of `size - 1`.
fn window(kind: WindowKind, periodic: bool, size: usize) -> Vec<f64> {
    let n1 = if periodic { size as f64 } else { size as f64 - 1.0 };
    (0..size)
        .map(|i| {
            let t = 2.0 * PI * i as f64 / n1;
            match kind {
                WindowKind::Hann => (PI * i as f64 / n1).sin().powi(2),
                WindowKind::Hamming => 25.0 / 46.0 - (1.0 - 25.0 / 46.0) * t.cos(),
                WindowKind::Blackman => 0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// MelWeightMatrix

fn mel_sizes(mel_bins: Option<i64>, dft_length: Option<i64>) -> Result<(usize, usize), OpError> {
    let mel_bins = positive(mel_bins.ok_or_else(|| OpError::invalid("num_mel_bins is required"))?, "num_mel_bins")?;
    let dft_length = positive(dft_length.ok_or_else(|| OpError::invalid("dft_length is required"))?, "dft_length")?;
    numel(&[dft_length / 2 + 1, mel_bins])?;
    Ok((mel_bins, dft_length))
}

/// Triangular filters between mel-spaced edge frequencies, computed step by step as
/// ONNX's reference does (the edge mel values in float32, the rest in float64, bins
/// floored) so the integer bin edges match exactly.
fn eval_mel(inputs: &[Option<&Tensor>], dtype: DType) -> Result<Vec<Tensor>, OpError> {
    let (mel_bins, dft_length) = mel_sizes(opt_scalar(opt_ints(inputs, 0)?, "num_mel_bins")?, opt_scalar(opt_ints(inputs, 1)?, "dft_length")?)?;
    let sample_rate = opt_scalar(opt_ints(inputs, 2)?, "sample_rate")?.ok_or_else(|| OpError::invalid("sample_rate is required"))?;
    if sample_rate <= 0 {
        return Err(OpError::invalid(format!("sample_rate {sample_rate} must be positive")));
    }
    let hertz = |i: usize| -> Result<f64, OpError> {
        match input(inputs, i)?.to_f64_vec().as_slice() {
            [v] => Ok(*v),
            _ => Err(OpError::invalid(format!("input {i} must be a single float"))),
        }
    };
    let mel = |hz: f64| 2595.0f32 * (1.0 + hz as f32 / 700.0).log10();
    let (low, high) = (mel(hertz(3)?), mel(hertz(4)?));
    let step = (high - low) / (mel_bins + 2) as f32;
    let edges: Vec<i64> = (0..mel_bins + 2)
        .map(|i| {
            let m = i as f64 * step as f64 + low as f64;
            let hz = 700.0 * (10f64.powf(m / 2595.0) - 1.0);
            (((dft_length + 1) as f64 * hz) / sample_rate as f64).floor() as i64
        })
        .collect();
    let rows = dft_length / 2 + 1;
    let mut out = vec![0.0; rows * mel_bins];
    let mut set = |j: i64, i: usize, v: f64| -> Result<(), OpError> {
        let j = usize::try_from(j).ok().filter(|&j| j < rows);
        let j = j.ok_or_else(|| OpError::invalid("MelWeightMatrix edge frequencies fall outside the spectrum"))?;
        out[j * mel_bins + i] = v;
        Ok(())
    };
    for i in 0..mel_bins {
        let (lo, center, hi) = (edges[i], edges[i + 1], edges[i + 2]);
        if center == lo {
            set(center, i, 1.0)?;
        } else {
            for j in lo..=center {
                set(j, i, (j - lo) as f64 / (center - lo) as f64)?;
            }
        }
        for j in center..hi {
            set(j, i, (hi - j) as f64 / (hi - center) as f64)?;
        }
    }
    Ok(vec![from_floats(dtype, &[rows, mel_bins], out)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irfft_inverts_rfft() {
        let x = Tensor::from_vec(&[1, 4, 1], vec![1.0f64, 2.0, -1.0, 0.5]);
        let fwd = DftPlan::new(x.shape(), 1, None, false, true).unwrap();
        let spec = fwd.run(&x.to_f64_vec());
        let inv = DftPlan::new(&fwd.out_shape(), 1, None, true, true).unwrap();
        assert_eq!(inv.out_shape(), vec![1, 4, 1]);
        for (a, b) in inv.run(&spec).iter().zip(x.to_f64_vec()) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}
