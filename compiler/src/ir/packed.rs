//! Numeric conversions for the types kept as raw bit patterns (`Tensor::Packed`):
//! 8-bit floats (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0), float4 E2M1 and the 4- and
//! 2-bit integers.
//!
//! The rules follow ONNX's reference implementation, which converts through the
//! `ml_dtypes` package: round to nearest even; without saturation an out-of-range value
//! becomes infinity where the format has one and NaN otherwise; with saturation it is
//! clamped to the largest finite value (infinities included, NaN stays NaN). E8M0 has its
//! own exponent-only rounding ([`encode_e8m0`]).

use super::dtype::DType;

/// How a small float format spends its special bit patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE 754 style: the all-ones exponent holds infinities and NaNs (E5M2, f16, bf16).
    Ieee,
    /// No infinities; only `S.1111.111` is NaN (E4M3FN).
    FiniteNanOnes,
    /// No infinities, no negative zero; `0x80` is the only NaN (the FNUZ types).
    FiniteNanNegZero,
    /// Neither infinities nor NaN (float4 E2M1).
    Finite,
}

/// A binary floating-point format with a sign bit, `ebits` exponent and `mbits` mantissa
/// bits; the bit pattern is returned in the low bits of a `u32`.
#[derive(Clone, Copy, Debug)]
pub struct MiniFloat {
    pub ebits: u32,
    pub mbits: u32,
    pub bias: i32,
    pub specials: Specials,
}

pub const E4M3FN: MiniFloat = MiniFloat { ebits: 4, mbits: 3, bias: 7, specials: Specials::FiniteNanOnes };
pub const E4M3FNUZ: MiniFloat = MiniFloat { ebits: 4, mbits: 3, bias: 8, specials: Specials::FiniteNanNegZero };
pub const E5M2: MiniFloat = MiniFloat { ebits: 5, mbits: 2, bias: 15, specials: Specials::Ieee };
pub const E5M2FNUZ: MiniFloat = MiniFloat { ebits: 5, mbits: 2, bias: 16, specials: Specials::FiniteNanNegZero };
pub const E2M1: MiniFloat = MiniFloat { ebits: 2, mbits: 1, bias: 1, specials: Specials::Finite };
/// float16 and bfloat16, for correctly rounded conversions from `f64` (the `half` crate
/// rounds twice, through `f32` or a truncated mantissa).
pub const F16: MiniFloat = MiniFloat { ebits: 5, mbits: 10, bias: 15, specials: Specials::Ieee };
pub const BF16: MiniFloat = MiniFloat { ebits: 8, mbits: 7, bias: 127, specials: Specials::Ieee };

impl MiniFloat {
    fn sign_bit(&self) -> u32 {
        1 << (self.ebits + self.mbits)
    }

    fn max_exp_field(&self) -> u32 {
        match self.specials {
            Specials::Ieee => (1 << self.ebits) - 2,
            _ => (1 << self.ebits) - 1,
        }
    }

    /// The largest finite value.
    pub fn max_finite(&self) -> f64 {
        let full = (1u32 << self.mbits) - 1;
        let mant = if self.specials == Specials::FiniteNanOnes { full - 1 } else { full };
        let e = self.max_exp_field() as i32 - self.bias;
        (1.0 + mant as f64 / (1u64 << self.mbits) as f64) * 2f64.powi(e)
    }

    /// The NaN pattern for a NaN of the given sign (as `ml_dtypes` converts it).
    fn nan_bits(&self, negative: bool) -> u32 {
        let sign = if negative { self.sign_bit() } else { 0 };
        match self.specials {
            Specials::Ieee => sign | (((1 << self.ebits) - 1) << self.mbits) | (1 << (self.mbits - 1)),
            Specials::FiniteNanOnes => sign | ((1 << (self.ebits + self.mbits)) - 1),
            Specials::FiniteNanNegZero => self.sign_bit(),
            // float4 E2M1 has no NaN: ml_dtypes gives a zero of the opposite sign.
            Specials::Finite => self.sign_bit() ^ sign,
        }
    }

    /// The value of a bit pattern.
    pub fn decode(&self, bits: u32) -> f64 {
        let bits = bits & ((self.sign_bit() << 1) - 1);
        let negative = bits & self.sign_bit() != 0;
        let exp = (bits >> self.mbits) & ((1 << self.ebits) - 1);
        let mant = bits & ((1 << self.mbits) - 1);
        let magnitude = match self.specials {
            Specials::FiniteNanNegZero if bits == self.sign_bit() => return f64::NAN,
            Specials::FiniteNanOnes if exp == (1 << self.ebits) - 1 && mant == (1 << self.mbits) - 1 => {
                return f64::NAN
            }
            Specials::Ieee if exp == (1 << self.ebits) - 1 => {
                if mant != 0 {
                    return f64::NAN;
                }
                f64::INFINITY
            }
            _ if exp == 0 => mant as f64 * 2f64.powi(1 - self.bias - self.mbits as i32),
            _ => (1.0 + mant as f64 / (1u64 << self.mbits) as f64) * 2f64.powi(exp as i32 - self.bias),
        };
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// The bit pattern nearest to `v` (ties to even). Out of range: the largest finite
    /// value when `saturate`, else infinity (IEEE formats) or NaN (the others; float4,
    /// which has neither, always saturates).
    pub fn encode(&self, v: f64, saturate: bool) -> u32 {
        if v.is_nan() {
            return self.nan_bits(v.is_sign_negative());
        }
        let sign = if v.is_sign_negative() { self.sign_bit() } else { 0 };
        let max = self.max_finite();
        let a = v.abs();
        let overflow = || -> u32 {
            if saturate || self.specials == Specials::Finite {
                sign | self.encode_magnitude(max)
            } else if self.specials == Specials::Ieee {
                sign | ((1 << self.ebits) - 1) << self.mbits
            } else {
                self.nan_bits(sign != 0)
            }
        };
        if a.is_infinite() {
            return overflow();
        }
        let r = self.round(a);
        if r > max {
            return overflow();
        }
        let magnitude = self.encode_magnitude(r);
        if magnitude == 0 && self.specials == Specials::FiniteNanNegZero {
            return 0;
        }
        sign | magnitude
    }

    /// `a` (finite, non-negative) rounded to the format's grid, ignoring the upper range.
    fn round(&self, a: f64) -> f64 {
        if a == 0.0 {
            return 0.0;
        }
        let emin = 1 - self.bias;
        let e = exponent_of(a).max(emin);
        let quantum = 2f64.powi(e - self.mbits as i32);
        (a / quantum).round_ties_even() * quantum
    }

    /// Bits (without sign) of a finite non-negative value already on the grid.
    fn encode_magnitude(&self, r: f64) -> u32 {
        if r == 0.0 {
            return 0;
        }
        let emin = 1 - self.bias;
        let e = exponent_of(r);
        if e < emin {
            return (r / 2f64.powi(emin - self.mbits as i32)) as u32;
        }
        let mant = (r / 2f64.powi(e - self.mbits as i32)) as u32 - (1 << self.mbits);
        (((e + self.bias) as u32) << self.mbits) | mant
    }
}

/// `floor(log2(a))` for a finite positive `a`, exactly.
fn exponent_of(a: f64) -> i32 {
    let bits = a.to_bits();
    let field = ((bits >> 52) & 0x7FF) as i32;
    if field == 0 {
        // Subnormal f64: far below every format handled here.
        -1075 + (64 - (bits & ((1 << 52) - 1)).leading_zeros() as i32)
    } else {
        field - 1023
    }
}

/// The rounding of an `f32` to E8M0 (`Cast`'s `round_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum E8M0Round {
    Up,
    Down,
    Nearest,
}

/// E8M0 (a bare power-of-two exponent) from an `f32`, exactly as ONNX's
/// `numpy_helper.to_float8e8m0`: works on the `f32` exponent field; `0xFF` is NaN;
/// with `saturate` rounding never carries into NaN.
pub fn encode_e8m0(x: f32, saturate: bool, round: E8M0Round) -> u8 {
    let bits = x.to_bits();
    let exponent = (bits >> 23) & 0xFF;
    if exponent == 0xFF {
        return 0xFF;
    }
    let round_up = match round {
        E8M0Round::Down => false,
        E8M0Round::Up => bits & 0x7F_FFFF != 0,
        E8M0Round::Nearest => {
            let g = bits & 0x40_0000 != 0;
            let r = bits & 0x20_0000 != 0;
            let s = bits & 0x1F_FFFF != 0;
            g && (r || s || exponent > 0)
        }
    };
    let up = round_up && !(saturate && exponent == 0xFE);
    (exponent + up as u32) as u8
}

fn e8m0_decode(bits: u8) -> f64 {
    if bits == 0xFF {
        f64::NAN
    } else {
        2f64.powi(bits as i32 - 127)
    }
}

/// The numeric value of one element's bit pattern.
pub fn decode(dtype: DType, bits: u8) -> f64 {
    match dtype {
        DType::U4 => (bits & 0xF) as f64,
        DType::I4 => (((bits & 0xF) << 4) as i8 >> 4) as f64,
        DType::U2 => (bits & 0x3) as f64,
        DType::I2 => (((bits & 0x3) << 6) as i8 >> 6) as f64,
        DType::F8E8M0 => e8m0_decode(bits),
        d => match minifloat(d) {
            Some(f) => f.decode(bits as u32),
            None => f64::NAN,
        },
    }
}

/// The format of a packed float type.
pub fn minifloat(dtype: DType) -> Option<MiniFloat> {
    Some(match dtype {
        DType::F8E4M3FN => E4M3FN,
        DType::F8E4M3FNUZ => E4M3FNUZ,
        DType::F8E5M2 => E5M2,
        DType::F8E5M2FNUZ => E5M2FNUZ,
        DType::F4E2M1 => E2M1,
        _ => return None,
    })
}

/// The bit pattern nearest to `v` (round to nearest even); `saturate` clamps finite
/// values outside the range to the largest finite value (ONNX `Cast(saturate=1)`).
/// The small integer types are rounded to nearest even and clamped (quantization
/// semantics; `Cast` truncates and wraps instead, see `ops::elementwise`); E8M0 rounds up.
pub fn encode(dtype: DType, v: f64, saturate: bool) -> u8 {
    match dtype {
        DType::U4 => (v.round_ties_even().clamp(0.0, 15.0)) as u8,
        DType::I4 => ((v.round_ties_even().clamp(-8.0, 7.0)) as i8 as u8) & 0xF,
        DType::U2 => (v.round_ties_even().clamp(0.0, 3.0)) as u8,
        DType::I2 => ((v.round_ties_even().clamp(-2.0, 1.0)) as i8 as u8) & 0x3,
        DType::F8E8M0 => encode_e8m0(v as f32, saturate, E8M0Round::Up),
        d => match minifloat(d) {
            Some(f) => f.encode(v, saturate) as u8,
            None => 0,
        },
    }
}

/// Element bit patterns (one per byte) in ONNX's packed layout: sub-byte elements low
/// bits first, the last byte zero-padded; 8-bit patterns unchanged.
pub fn pack(dtype: DType, elems: &[u8]) -> Vec<u8> {
    let bits = dtype.bits();
    if bits >= 8 {
        return elems.to_vec();
    }
    let mut out = vec![0u8; dtype.storage_bytes(elems.len())];
    let per = 8 / bits;
    let mask = (1u8 << bits) - 1;
    for (i, &b) in elems.iter().enumerate() {
        out[i / per] |= (b & mask) << ((i % per) * bits);
    }
    out
}

/// The inverse of [`pack`]: `numel` bit patterns, one per byte. `bytes` must hold at
/// least `dtype.storage_bytes(numel)` bytes.
pub fn unpack(dtype: DType, bytes: &[u8], numel: usize) -> Vec<u8> {
    let bits = dtype.bits();
    if bits >= 8 {
        return bytes[..numel].to_vec();
    }
    let per = 8 / bits;
    let mask = (1u8 << bits) - 1;
    (0..numel).map(|i| (bytes[i / per] >> ((i % per) * bits)) & mask).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima() {
        assert_eq!(E4M3FN.max_finite(), 448.0);
        assert_eq!(E4M3FNUZ.max_finite(), 240.0);
        assert_eq!(E5M2.max_finite(), 57344.0);
        assert_eq!(E5M2FNUZ.max_finite(), 57344.0);
        assert_eq!(E2M1.max_finite(), 6.0);
    }

    /// Values checked against `ml_dtypes` 0.6 (`np.float32(x).astype(...).view(np.uint8)`).
    #[test]
    fn matches_ml_dtypes() {
        let xs = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e6, 470.0, 464.0, 7.0, 6.5, -0.0, 0.1, -7.6, 3.5];
        let e4m3fn = [127, 255, 127, 127, 127, 126, 78, 77, 128, 29, 207, 70];
        let e4m3fnuz = [128, 128, 128, 128, 128, 128, 86, 85, 0, 37, 215, 78];
        let e5m2 = [124, 252, 126, 124, 95, 95, 71, 70, 128, 46, 200, 67];
        let e5m2fnuz = [128, 128, 128, 128, 99, 99, 75, 74, 0, 50, 204, 71];
        let e2m1 = [7, 15, 8, 7, 7, 7, 7, 7, 8, 0, 15, 6];
        for (f, want) in [(E4M3FN, e4m3fn), (E4M3FNUZ, e4m3fnuz), (E5M2, e5m2), (E5M2FNUZ, e5m2fnuz), (E2M1, e2m1)] {
            let got: Vec<u32> = xs.iter().map(|&x| f.encode(x, false)).collect();
            assert_eq!(got, want, "{f:?}");
        }
    }

    #[test]
    fn round_trip_every_pattern() {
        for f in [E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ] {
            for b in 0..256u32 {
                let v = f.decode(b);
                if !v.is_nan() {
                    assert_eq!(f.encode(v, false), b, "{f:?} {b:#x}");
                }
            }
        }
    }

    #[test]
    fn pack_round_trips() {
        let elems: Vec<u8> = (0..7).map(|i| (i * 5) as u8 & 0xF).collect();
        let p = pack(DType::I4, &elems);
        assert_eq!(p, vec![0x50, 0xFA, 0x94, 0x0E]);
        assert_eq!(unpack(DType::I4, &p, 7), elems);
        let two: Vec<u8> = vec![1, 2, 3, 0, 1];
        assert_eq!(pack(DType::U2, &two), vec![0b00_11_10_01, 0b01]);
        assert_eq!(unpack(DType::U2, &pack(DType::U2, &two), 5), two);
    }

    #[test]
    fn e8m0() {
        assert_eq!(encode_e8m0(1.0, true, E8M0Round::Up), 127);
        assert_eq!(encode_e8m0(1.5, true, E8M0Round::Up), 128);
        assert_eq!(encode_e8m0(1.5, true, E8M0Round::Down), 127);
        assert_eq!(decode(DType::F8E8M0, 128), 2.0);
    }
}
