//! `Cast` and `CastLike` conversions, as ONNX's reference (`op_cast.py`) does them with
//! numpy and `ml_dtypes`: the 8-bit floats honour `saturate`, E8M0 has its own
//! `round_mode`, float4 always saturates, and the 2- and 4-bit integers truncate toward
//! zero and wrap (`astype`), unlike quantization, which rounds and clamps.

use ndarray::ArrayD;

use super::elementwise_num::{float_to_int, from_f64, from_i128, Nums};
use crate::error::OpError;
use crate::ir::packed::{self, E8M0Round};
use crate::ir::{DType, Tensor};

/// Attributes shared by `Cast` and `CastLike`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CastMode {
    pub saturate: bool,
    pub round: E8M0Round,
}

/// `round_mode` (opset 24+; "up" before).
pub fn parse_round(s: &str) -> Result<E8M0Round, OpError> {
    match s {
        "up" => Ok(E8M0Round::Up),
        "down" => Ok(E8M0Round::Down),
        "nearest" => Ok(E8M0Round::Nearest),
        other => Err(OpError::invalid(format!("round_mode '{other}' is not one of up, down, nearest"))),
    }
}

/// `x` converted to `to`.
pub fn cast(x: &Tensor, to: DType, mode: CastMode) -> Result<Tensor, OpError> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    if let Tensor::Packed(d, _) = x {
        if d.is_float() && (to.is_int() || to == DType::Bool) {
            return Ok(small_float_to_int(x, *d, to));
        }
        // Decoded bit patterns are exact f64 values: convert those like a float64 source.
        if d.is_float() {
            return cast(&Tensor::F64(x.to_f64_array()), to, mode);
        }
    }
    Ok(match to {
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F4E2M1 => {
            let f = packed::minifloat(to).ok_or_else(|| OpError::invalid(format!("{to} is not a small float")))?;
            let v = Nums::of(x).into_f64();
            Tensor::Packed(to, v.mapv(|e| f.encode(e, mode.saturate) as u8))
        }
        DType::F8E8M0 => {
            let v = Nums::of(x).into_f64();
            Tensor::Packed(to, v.mapv(|e| packed::encode_e8m0(e as f32, mode.saturate, mode.round)))
        }
        DType::U4 | DType::I4 | DType::U2 | DType::I2 => Tensor::Packed(to, wrap_to_bits(x, to.bits())),
        DType::F16 | DType::BF16 => from_f64(to, Nums::of(x).into_f64()),
        _ if to.is_int() || to == DType::Bool => int_or_bool(x, to),
        _ => x.cast(to),
    })
}

/// Integer and bool targets: integers convert exactly with wrapping, floats truncate.
fn int_or_bool(x: &Tensor, to: DType) -> Tensor {
    match Nums::of(x) {
        Nums::I(a) => from_i128(to, a),
        Nums::F(a) => from_f64(to, a),
    }
}

/// 8- and 4-bit floats to integers or bool, as `ml_dtypes` converts them: NaN gives 0;
/// infinities saturate to the target's range (for 2/4-bit targets: `i64`'s range, then
/// wrapped); finite values truncate toward zero and wrap. E8M0 instead converts like a
/// numpy float (NaN still gives 0).
fn small_float_to_int(x: &Tensor, from: DType, to: DType) -> Tensor {
    let v = x.to_f64_array();
    if to == DType::Bool {
        return Tensor::Bool(v.mapv(|e| e != 0.0));
    }
    let (lo, hi) = match to.bits() {
        b if b < 8 => (i64::MIN as i128, i64::MAX as i128),
        b if to.is_signed_int() => (-(1i128 << (b - 1)), (1i128 << (b - 1)) - 1),
        b => (0, (1i128 << b) - 1),
    };
    let ints = v.mapv(|e| match () {
        _ if e.is_nan() => 0,
        _ if from == DType::F8E8M0 && to.bits() >= 8 => float_to_int(e, to),
        _ if e == f64::INFINITY => hi,
        _ if e == f64::NEG_INFINITY => lo,
        _ => e.trunc() as i128,
    });
    from_i128(to, ints)
}

/// The low `bits` bits of each element's integer value (numpy `astype` to the 2/4-bit
/// types): floats truncate toward zero; non-finite and huge floats give 0 (x86's
/// conversion result, `i64::MIN`, wrapped).
fn wrap_to_bits(x: &Tensor, bits: usize) -> ArrayD<u8> {
    let mask = (1i128 << bits) - 1;
    let ints = match Nums::of(x) {
        Nums::I(a) => a,
        Nums::F(a) => a.mapv(|v| if v.is_finite() && v.abs() < 9.2e18 { v.trunc() as i128 } else { 0 }),
    };
    ints.mapv(|v| (v & mask) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode() -> CastMode {
        CastMode { saturate: true, round: E8M0Round::Up }
    }

    /// `np.float32([...]).astype(ml_dtypes.int4)` gives 0 6 0 1 -7 -8 4.
    #[test]
    fn float_to_int4_truncates_and_wraps() {
        let x = Tensor::from_vec(&[7], vec![f32::NAN, 470.0, 464.0, 449.0, -7.6, 8.0, 100.0]);
        let y = cast(&x, DType::I4, mode()).unwrap();
        let want: Vec<f64> = vec![0.0, 6.0, 0.0, 1.0, -7.0, -8.0, 4.0];
        assert_eq!(y.to_f64_vec(), want);
    }

    #[test]
    fn saturate_flag() {
        let x = Tensor::from_vec(&[2], vec![1e6f32, f32::NEG_INFINITY]);
        let sat = cast(&x, DType::F8E4M3FN, mode()).unwrap().to_f64_vec();
        assert_eq!(sat, vec![448.0, -448.0]);
        let raw = cast(&x, DType::F8E5M2, CastMode { saturate: false, ..mode() }).unwrap().to_f64_vec();
        assert_eq!(raw, vec![f64::INFINITY, f64::NEG_INFINITY]);
    }
}
