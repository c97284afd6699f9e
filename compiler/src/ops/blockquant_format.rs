//! The weight-only block formats of `--quantize int4` / `--quantize int8-weights`:
//! llama.cpp's Q4_0 and Q8_0, byte for byte, so sizes compare directly.
//!
//! A row of `k` weights (`k` a multiple of 32) is `k / 32` blocks, stored one after the
//! other:
//! - **Q4_0** (18 bytes): `d` as IEEE float16, little-endian (2 bytes), then 16 bytes of
//!   nibbles: byte `t` holds element `t` in its low nibble and element `t + 16` in its
//!   high nibble. Element value `d * (q - 8)`, `q` in 0..=15.
//! - **Q8_0** (34 bytes): `d` as float16 (2 bytes), then 32 signed bytes `q`. Element
//!   value `d * q`.
//!
//! Quantization follows llama.cpp's reference (`quantize_row_q4_0_ref`,
//! `quantize_row_q8_0_ref`): Q4_0 takes `d = max / -8` where `max` is the element of
//! largest magnitude (with its sign, so that element maps exactly to `q = 0`), Q8_0
//! `d = amax / 127`. One difference: the codes are computed with the float16-rounded
//! `d` the kernels will multiply by, not the float32 one, which removes a small bias.

use half::f16;

/// Weights per block.
pub const BLOCK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockFormat {
    Q4_0,
    Q8_0,
}

impl BlockFormat {
    pub fn name(self) -> &'static str {
        match self {
            BlockFormat::Q4_0 => "Q4_0",
            BlockFormat::Q8_0 => "Q8_0",
        }
    }

    /// Bytes of one block of 32 weights.
    pub fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_0 => 2 + BLOCK / 2,
            BlockFormat::Q8_0 => 2 + BLOCK,
        }
    }

    /// Bytes of a row of `k` weights (`k` a multiple of [`BLOCK`]).
    pub fn row_bytes(self, k: usize) -> usize {
        k / BLOCK * self.block_bytes()
    }
}

/// Why a row length or a value range cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// The row length is not a multiple of 32.
    RowLength(usize),
    /// A block's scale overflows float16 (or a weight is not finite).
    Range,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            PackError::RowLength(k) => write!(f, "the reduction length {k} is not a multiple of {BLOCK}"),
            PackError::Range => write!(f, "a block's scale does not fit float16 (or a weight is not finite)"),
        }
    }
}

/// Packs `data`, row-major rows of `k` weights each, into blocks of `format`.
pub fn pack(format: BlockFormat, data: &[f32], k: usize) -> Result<Vec<u8>, PackError> {
    if k == 0 || k % BLOCK != 0 || data.len() % k != 0 {
        return Err(PackError::RowLength(k));
    }
    let mut out = Vec::with_capacity(data.len() / BLOCK * format.block_bytes());
    for block in data.chunks_exact(BLOCK) {
        pack_block(format, block, &mut out)?;
    }
    Ok(out)
}

fn pack_block(format: BlockFormat, x: &[f32], out: &mut Vec<u8>) -> Result<(), PackError> {
    if x.iter().any(|v| !v.is_finite()) {
        return Err(PackError::Range);
    }
    let d = match format {
        BlockFormat::Q4_0 => {
            // The element of largest magnitude, sign kept (first one on ties, as llama.cpp).
            let mut max = 0.0f32;
            for &v in x {
                if v.abs() > max.abs() {
                    max = v;
                }
            }
            max / -8.0
        }
        BlockFormat::Q8_0 => x.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0,
    };
    let dh = f16::from_f32(d);
    if !dh.is_finite() {
        return Err(PackError::Range);
    }
    out.extend_from_slice(&dh.to_bits().to_le_bytes());
    let d = dh.to_f32();
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    match format {
        BlockFormat::Q4_0 => {
            let code = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
            for t in 0..BLOCK / 2 {
                out.push(code(x[t]) | (code(x[t + BLOCK / 2]) << 4));
            }
        }
        BlockFormat::Q8_0 => {
            for &v in x {
                out.push(((v * id).round() as i32).clamp(-127, 127) as i8 as u8);
            }
        }
    }
    Ok(())
}

/// A Q4_0 scale for block `x` chosen to minimise the block's squared rounding error
/// among `d = max / s` (`max` the signed element of largest magnitude, `s` from -9 to
/// -6 and 6 to 8 in quarter steps); the reference rule `s = -8` is one candidate and
/// wins ties. Same format, just a better `d` (llama.cpp's newer quantizers search too).
pub fn q4_0_best_scale(x: &[f32]) -> f16 {
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    let err = |dh: f16| -> f32 {
        let d = dh.to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        x.iter()
            .map(|&v| {
                let q = ((v * id + 8.5) as i32).clamp(0, 15);
                let e = v - d * (q - 8) as f32;
                e * e
            })
            .sum()
    };
    let mut best = f16::from_f32(max / -8.0);
    let mut best_err = err(best);
    let candidates = (0..=12).map(|i| -9.0 + 0.25 * i as f32).chain((0..=8).map(|i| 6.0 + 0.25 * i as f32));
    for s in candidates {
        let dh = f16::from_f32(max / s);
        if dh.is_finite() {
            let e = err(dh);
            if e < best_err {
                best = dh;
                best_err = e;
            }
        }
    }
    best
}

/// [`pack`] with Q4_0 scales from [`q4_0_best_scale`] (Q8_0 unchanged).
pub fn pack_searched(format: BlockFormat, data: &[f32], k: usize) -> Result<Vec<u8>, PackError> {
    if format == BlockFormat::Q8_0 {
        return pack(format, data, k);
    }
    if k == 0 || k % BLOCK != 0 || data.len() % k != 0 {
        return Err(PackError::RowLength(k));
    }
    let mut out = Vec::with_capacity(data.len() / BLOCK * format.block_bytes());
    for x in data.chunks_exact(BLOCK) {
        if x.iter().any(|v| !v.is_finite()) {
            return Err(PackError::Range);
        }
        let dh = q4_0_best_scale(x);
        if !dh.is_finite() {
            return Err(PackError::Range);
        }
        out.extend_from_slice(&dh.to_bits().to_le_bytes());
        let d = dh.to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let code = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
        for t in 0..BLOCK / 2 {
            out.push(code(x[t]) | (code(x[t + BLOCK / 2]) << 4));
        }
    }
    Ok(out)
}

/// The float16 scale of a block.
pub fn scale(block: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32()
}

/// Element `t` (0..32) of a block, dequantized.
pub fn element(format: BlockFormat, block: &[u8], t: usize) -> f32 {
    let d = scale(block);
    match format {
        BlockFormat::Q4_0 => {
            let byte = block[2 + t % (BLOCK / 2)];
            let q = if t < BLOCK / 2 { byte & 15 } else { byte >> 4 };
            d * (q as i32 - 8) as f32
        }
        BlockFormat::Q8_0 => d * (block[2 + t] as i8) as f32,
    }
}

/// Dequantizes packed blocks back to floats (row-major, rows end on block boundaries).
pub fn unpack(format: BlockFormat, bytes: &[u8]) -> Vec<f32> {
    let bb = format.block_bytes();
    let mut out = Vec::with_capacity(bytes.len() / bb * BLOCK);
    for block in bytes.chunks_exact(bb) {
        out.extend((0..BLOCK).map(|t| element(format, block, t)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-computed Q4_0 block: max magnitude -4.0 (element 3) gives d = 0.5; element
    /// value v codes as trunc(v / 0.5 + 8.5) clamped to 0..=15.
    #[test]
    fn q4_0_block_matches_hand_computed_bytes() {
        let mut x = [0.0f32; 32];
        x[0] = 1.0; // d = -4 / -8 = 0.5: q = trunc(1 / 0.5 + 8.5) = 10
        x[3] = -4.0; // q = trunc(-8 + 8.5) = 0
        x[16] = 3.6; // 7.2 + 8.5 = 15.7 -> 15
        x[17] = -0.3; // -0.6 + 8.5 = 7.9 -> 7
        let bytes = pack(BlockFormat::Q4_0, &x, 32).unwrap();
        assert_eq!(bytes.len(), 18);
        // 0.5 in float16 is 0x3800, little-endian.
        assert_eq!(&bytes[..2], &[0x00, 0x38]);
        let mut want = [0x88u8; 16]; // zeros code as 8 in both nibbles
        want[0] = 10 | (15 << 4);
        want[1] = 8 | (7 << 4);
        want[3] = 0 | (8 << 4);
        assert_eq!(&bytes[2..], &want);
        let back = unpack(BlockFormat::Q4_0, &bytes);
        assert_eq!(back[0], 1.0);
        assert_eq!(back[3], -4.0);
        assert_eq!(back[16], 3.5);
        assert_eq!(back[17], -0.5);
        assert_eq!(back[5], 0.0);
    }

    #[test]
    fn q8_0_block_matches_hand_computed_bytes() {
        let mut x = [0.0f32; 32];
        x[0] = 2.54; // amax: d = 0.02 (float16 0.02 = 0x251F = 0.0200042...)
        x[1] = -1.0; // -1 / 0.0200042 = -49.99 -> -50
        x[31] = 0.011; // 0.55 -> 1
        let bytes = pack(BlockFormat::Q8_0, &x, 32).unwrap();
        assert_eq!(bytes.len(), 34);
        assert_eq!(&bytes[..2], &[0x1F, 0x25]);
        assert_eq!(bytes[2], 127);
        assert_eq!(bytes[3] as i8, -50);
        assert_eq!(bytes[2 + 31], 1);
        assert!(bytes[4..2 + 31].iter().all(|&b| b == 0));
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        for f in [BlockFormat::Q4_0, BlockFormat::Q8_0] {
            let bytes = pack(f, &x, 64).unwrap();
            assert_eq!(bytes.len(), f.row_bytes(64) * 4);
            let back = unpack(f, &bytes);
            for (blk, (a, b)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
                let d = scale(&bytes[blk * f.block_bytes()..]).abs();
                for (u, v) in a.iter().zip(b) {
                    assert!((u - v).abs() <= d * 0.5 + 1e-6 || (f == BlockFormat::Q4_0 && (u - v).abs() <= d), "{f:?} {u} {v} d={d}");
                }
            }
        }
    }

    #[test]
    fn rejects_rows_not_a_multiple_of_32() {
        assert_eq!(pack(BlockFormat::Q4_0, &[0.0; 48], 48), Err(PackError::RowLength(48)));
    }
}
