//! Numeric conversions for the types kept as raw bit patterns (`Tensor::Packed`):
//! 8-bit floats (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0), float4 E2M1 and the 4- and
//! 2-bit integers.

use super::dtype::DType;

/// The numeric value of one element's bit pattern.
pub fn decode(dtype: DType, bits: u8) -> f64 {
    match dtype {
        DType::U4 => (bits & 0xF) as f64,
        DType::I4 => (((bits & 0xF) << 4) as i8 >> 4) as f64,
        DType::U2 => (bits & 0x3) as f64,
        DType::I2 => (((bits & 0x3) << 6) as i8 >> 6) as f64,
        // TODO(elementwise/cast owner): exact minifloat decoding.
        _ => f64::NAN,
    }
}

/// The bit pattern nearest to `v` (round to nearest even); `saturate` clamps finite
/// values outside the range to the largest finite value (ONNX `Cast(saturate=1)`).
pub fn encode(dtype: DType, v: f64, saturate: bool) -> u8 {
    let _ = saturate;
    match dtype {
        DType::U4 => (v.round_ties_even().clamp(0.0, 15.0)) as u8,
        DType::I4 => ((v.round_ties_even().clamp(-8.0, 7.0)) as i8 as u8) & 0xF,
        DType::U2 => (v.round_ties_even().clamp(0.0, 3.0)) as u8,
        DType::I2 => ((v.round_ties_even().clamp(-2.0, 1.0)) as i8 as u8) & 0x3,
        _ => 0,
    }
}
