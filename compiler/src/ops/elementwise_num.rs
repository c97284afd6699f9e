//! Numbers of the elementwise family: every tensor is computed on as `f64` (float types)
//! or `i128` (integer types and bool), which hold each element exactly, and results are
//! converted back to the output type. `i128` keeps `u64` and `i64` exact, and casting the
//! result back with `as` wraps like numpy's fixed-width integer arithmetic.

use half::{bf16, f16};
use ndarray::ArrayD;

use crate::ops::util::broadcast_to;
use crate::error::OpError;
use crate::ir::packed;
use crate::ir::{DType, Tensor};

/// The elements of a tensor in a type that represents each of them exactly.
pub enum Nums {
    F(ArrayD<f64>),
    I(ArrayD<i128>),
}

impl Nums {
    pub fn of(t: &Tensor) -> Nums {
        match t {
            Tensor::I8(a) => Nums::I(a.mapv(i128::from)),
            Tensor::U8(a) => Nums::I(a.mapv(i128::from)),
            Tensor::I16(a) => Nums::I(a.mapv(i128::from)),
            Tensor::U16(a) => Nums::I(a.mapv(i128::from)),
            Tensor::I32(a) => Nums::I(a.mapv(i128::from)),
            Tensor::U32(a) => Nums::I(a.mapv(i128::from)),
            Tensor::I64(a) => Nums::I(a.mapv(i128::from)),
            Tensor::U64(a) => Nums::I(a.mapv(i128::from)),
            Tensor::Bool(a) => Nums::I(a.mapv(i128::from)),
            Tensor::Packed(d, a) if d.is_int() => Nums::I(a.mapv(|b| packed::decode(*d, b) as i128)),
            other => Nums::F(other.to_f64_array()),
        }
    }

    /// As floats (integers converted, which is exact below 2^53).
    pub fn into_f64(self) -> ArrayD<f64> {
        match self {
            Nums::F(a) => a,
            Nums::I(a) => a.mapv(|x| x as f64),
        }
    }
}

/// `f64` results as a tensor of `dtype`: floats rounded to nearest even, integers
/// converted like numpy on x86 ([`float_to_int`]), bool is `!= 0`.
pub fn from_f64(dtype: DType, a: ArrayD<f64>) -> Tensor {
    match dtype {
        DType::F32 => Tensor::F32(a.mapv(|x| x as f32)),
        DType::F64 => Tensor::F64(a),
        DType::F16 => Tensor::F16(a.mapv(|x| f16::from_bits(packed::F16.encode(x, false) as u16))),
        DType::BF16 => Tensor::BF16(a.mapv(|x| bf16::from_bits(packed::BF16.encode(x, false) as u16))),
        DType::Bool => Tensor::Bool(a.mapv(|x| x != 0.0)),
        d if d.is_int() && !d.is_packed() => from_i128(d, a.mapv(|x| float_to_int(x, d))),
        d => Tensor::Packed(d, a.mapv(|x| packed::encode(d, x, true))),
    }
}

/// A float converted to the integer type `dtype` as numpy does on x86 (ONNX leaves
/// out-of-range conversions undefined; the reference is numpy): truncation toward zero;
/// 8- and 16-bit types go through `i32` and wrap; out of range (NaN included) gives the
/// hardware's "integer indefinite" (`i32::MIN`/`i64::MIN`) for signed types, and for
/// unsigned ones wraps small negative values, maps large ones and NaN to the sign bit
/// and too-large positive ones to 0. The result is returned before wrapping to width.
pub fn float_to_int(x: f64, dtype: DType) -> i128 {
    const I32: (f64, f64) = (-2147483648.0, 2147483648.0);
    const I64: (f64, f64) = (-9223372036854775808.0, 9223372036854775808.0);
    let within = |(lo, hi): (f64, f64)| x >= lo && x < hi;
    let t = if x.is_finite() { x.trunc() as i128 } else { 0 };
    match dtype.bits() {
        bits if bits <= 16 => {
            if within(I32) {
                t
            } else {
                0
            }
        }
        32 if dtype.is_signed_int() => {
            if within(I32) {
                t
            } else {
                i32::MIN as i128
            }
        }
        32 => match () {
            _ if x.is_nan() || x < I32.0 => 1 << 31,
            _ if x < 4294967296.0 => t,
            _ => 0,
        },
        _ if dtype.is_signed_int() => {
            if within(I64) {
                t
            } else {
                i64::MIN as i128
            }
        }
        _ => match () {
            _ if x.is_nan() || x < I64.0 => 1 << 63,
            _ if x < 18446744073709551616.0 => t,
            _ => 0,
        },
    }
}

/// Rounding of an `f64` to the precision of the float type `dtype`: the reference
/// computes each step of an expression in the input's type, so kernels apply this
/// after every step to give the same results (f16 and bf16 differ visibly otherwise).
pub fn rounder(dtype: DType) -> fn(f64) -> f64 {
    match dtype {
        DType::F32 => |x| x as f32 as f64,
        DType::F16 => |x| packed::F16.decode(packed::F16.encode(x, false)),
        DType::BF16 => |x| packed::BF16.decode(packed::BF16.encode(x, false)),
        _ => |x| x,
    }
}

/// Rounding of a step that combines an array of `dtype` with a Python float scalar in
/// the reference: numpy keeps f16/f32/f64 (rounding the scalar to the type), but
/// `ml_dtypes` computes bf16 with a float scalar in f32.
pub fn scalar_rounder(dtype: DType) -> fn(f64) -> f64 {
    rounder(if dtype == DType::BF16 { DType::F32 } else { dtype })
}

/// `i128` results as a tensor of `dtype`, wrapping to its width (numpy's overflow).
pub fn from_i128(dtype: DType, a: ArrayD<i128>) -> Tensor {
    match dtype {
        DType::I8 => Tensor::I8(a.mapv(|x| x as i8)),
        DType::U8 => Tensor::U8(a.mapv(|x| x as u8)),
        DType::I16 => Tensor::I16(a.mapv(|x| x as i16)),
        DType::U16 => Tensor::U16(a.mapv(|x| x as u16)),
        DType::I32 => Tensor::I32(a.mapv(|x| x as i32)),
        DType::U32 => Tensor::U32(a.mapv(|x| x as u32)),
        DType::I64 => Tensor::I64(a.mapv(|x| x as i64)),
        DType::U64 => Tensor::U64(a.mapv(|x| x as u64)),
        DType::Bool => Tensor::Bool(a.mapv(|x| x != 0)),
        d if d.is_int() => {
            let mask = (1i128 << d.bits()) - 1;
            Tensor::Packed(d, a.mapv(|x| (x & mask) as u8))
        }
        d => from_f64(d, a.mapv(|x| x as f64)),
    }
}

/// Applies `f` to the elements of `a` and `b` broadcast together.
pub fn zip_with<A: Clone, B: Clone, R>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    shape: &[usize],
    mut f: impl FnMut(A, B) -> Result<R, OpError>,
) -> Result<ArrayD<R>, OpError> {
    if shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none() {
        return Err(OpError::invalid(format!("shape {shape:?} has too many elements")));
    }
    let (a, b) = (broadcast_to(a, shape)?, broadcast_to(b, shape)?);
    let v = a.iter().zip(b.iter()).map(|(x, y)| f(x.clone(), y.clone())).collect::<Result<Vec<R>, _>>()?;
    ArrayD::from_shape_vec(shape, v).map_err(|e| OpError::invalid(e.to_string()))
}

/// The error function, to about 1e-15: its Taylor series near zero, the continued
/// fraction of `erfc` further out (Rust's standard library has no `erf`).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, x2) = (a, a, a * a);
        for n in 1..200 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 27.0 {
        // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
        let mut f = a;
        for k in (1..=80).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else {
        1.0
    };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_values() {
        // Values from Python's math.erf.
        for (x, want) in [(0.0, 0.0), (0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (2.4, 0.999311486103355), (2.6, 0.9997639655834707), (-3.0, -0.9999779095030014)] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {} want {want}", erf(x));
        }
    }

    /// numpy 2 on x86: `np.array([...], np.float64).astype(...)`.
    #[test]
    fn float_to_int_like_numpy() {
        let xs = [f64::NAN, f64::INFINITY, 300.0, -1.0, 70000.0, 3e9, -3e9, 1e19];
        let conv = |d| xs.iter().map(|&x| float_to_int(x, d)).collect::<Vec<_>>();
        assert_eq!(conv(DType::I8), vec![0, 0, 300, -1, 70000, 0, 0, 0]);
        assert_eq!(conv(DType::I32), vec![-1 << 31, -1 << 31, 300, -1, 70000, -1 << 31, -1 << 31, -1 << 31]);
        assert_eq!(conv(DType::U32), vec![1 << 31, 0, 300, -1, 70000, 3_000_000_000, 1 << 31, 0]);
        assert_eq!(conv(DType::U64), vec![1 << 63, 0, 300, -1, 70000, 3_000_000_000, -3_000_000_000, 10_000_000_000_000_000_000]);
    }

    #[test]
    fn wrapping_back() {
        let t = from_i128(DType::I8, ArrayD::from_shape_vec(vec![2], vec![128, -129]).unwrap());
        assert_eq!(t.as_array::<i8>().unwrap().as_slice().unwrap(), &[-128, 127]);
    }
}
