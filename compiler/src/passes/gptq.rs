//! Error-compensating rounding of a weight matrix into blocks (GPTQ, Frantar et al.
//! 2022, with llama.cpp's block scales): the codes still follow the Q4_0/Q8_0 layout
//! exactly; only *which* code each weight gets changes.
//!
//! Plain rounding treats every weight alone. GPTQ quantizes the reduction axis one
//! position at a time and spreads each rounding error over the positions not yet
//! quantized, weighted by how the layer's calibration inputs correlate them (the
//! Hessian `H = X^T X` of the layer's squared output error), so the *outputs* on
//! inputs like the calibration ones move as little as possible. Each block's scale is
//! taken with the format's rule from the block's weights as updated when the block
//! starts. With H = identity this is plain rounding.

use half::f16;

use crate::ops::blockquant_format::{q4_0_best_scale, BlockFormat, BLOCK};

/// Largest reduction length handled (the Hessian work is cubic in it); longer rows
/// fall back to plain rounding.
pub const MAX_K: usize = 4096;

/// Relative dampening added to H's diagonal (GPTQ's default), so H is well conditioned
/// with few calibration rows.
const DAMP: f64 = 0.01;

/// `H = X^T X` of calibration rows `x` (row-major `[m, k]`).
pub fn hessian(x: &[f32], k: usize) -> Vec<f64> {
    let mut h = vec![0f64; k * k];
    for row in x.chunks_exact(k) {
        for i in 0..k {
            let a = row[i] as f64;
            if a == 0.0 {
                continue;
            }
            for j in 0..k {
                h[i * k + j] += a * row[j] as f64;
            }
        }
    }
    h
}

/// Lower Cholesky factor of the SPD matrix `a` (`k × k`), `None` if not positive definite.
fn cholesky(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    Some(l)
}

/// The upper Cholesky factor `U` of `H^-1` (`H^-1 = U^T U`), H dampened first.
fn inverse_factor(mut h: Vec<f64>, k: usize) -> Option<Vec<f64>> {
    let mean = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
    for i in 0..k {
        // Inputs that are always zero: their weights do not matter; keep H regular.
        if h[i * k + i] == 0.0 {
            h[i * k + i] = 1.0;
        }
        h[i * k + i] += DAMP * mean.max(1e-12);
    }
    let l = cholesky(&h, k)?;
    // H^-1 = L^-T L^-1: invert L (lower triangular) column by column.
    let mut li = vec![0f64; k * k];
    for c in 0..k {
        for i in c..k {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for p in c..i {
                s -= l[i * k + p] * li[p * k + c];
            }
            li[i * k + c] = s / l[i * k + i];
        }
    }
    let mut inv = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            let s: f64 = (i.max(j)..k).map(|p| li[p * k + i] * li[p * k + j]).sum();
            inv[i * k + j] = s;
            inv[j * k + i] = s;
        }
    }
    upper_factor(&inv, k)
}

/// Upper triangular `U` with `a = U^T U` (`a` SPD).
fn upper_factor(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut u = vec![0f64; k * k];
    for i in 0..k {
        let mut s = a[i * k + i];
        for p in 0..i {
            s -= u[p * k + i] * u[p * k + i];
        }
        if s <= 0.0 {
            return None;
        }
        let d = s.sqrt();
        u[i * k + i] = d;
        for j in i + 1..k {
            let mut s = a[i * k + j];
            for p in 0..i {
                s -= u[p * k + i] * u[p * k + j];
            }
            u[i * k + j] = s / d;
        }
    }
    Some(u)
}

/// The scale of a block: Q4_0's searched scale (`q4_0_best_scale`), Q8_0's rule.
fn block_scale(format: BlockFormat, x: &[f64]) -> f16 {
    match format {
        BlockFormat::Q4_0 => q4_0_best_scale(&x.iter().map(|&v| v as f32).collect::<Vec<f32>>()),
        BlockFormat::Q8_0 => f16::from_f32(x.iter().fold(0.0f32, |m, v| m.max((*v as f32).abs())) / 127.0),
    }
}

/// The stored code of `v` with scale `d` (Q4_0: 0..=15, Q8_0: -127..=127), in f32 as
/// `blockquant_format::pack`.
fn code(format: BlockFormat, v: f64, d: f64) -> i32 {
    let (v, d) = (v as f32, d as f32);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    match format {
        BlockFormat::Q4_0 => ((v * id + 8.5).floor() as i32).clamp(0, 15),
        BlockFormat::Q8_0 => ((v * id).round() as i32).clamp(-127, 127),
    }
}

fn value(format: BlockFormat, q: i32, d: f64) -> f64 {
    match format {
        BlockFormat::Q4_0 => d * (q - 8) as f64,
        BlockFormat::Q8_0 => d * q as f64,
    }
}

/// Quantizes `w` (row-major `[rows, k]`, blocks along `k`) with GPTQ given the
/// calibration Hessian `h` (`k × k`); returns the packed bytes, or `None` when H is
/// unusable (the caller then rounds plainly).
pub fn quantize(format: BlockFormat, w: &[f32], k: usize, h: Vec<f64>) -> Option<Vec<u8>> {
    if k == 0 || k % BLOCK != 0 || k > MAX_K || w.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let u = inverse_factor(h, k)?;
    let rows = w.len() / k;
    let nb = k / BLOCK;
    let mut work: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let mut scales = vec![f16::ZERO; rows * nb];
    let mut codes = vec![0i32; rows * k];
    for i in 0..k {
        let b = i / BLOCK;
        if i % BLOCK == 0 {
            for r in 0..rows {
                let d = block_scale(format, &work[r * k + i..r * k + i + BLOCK]);
                if !d.is_finite() {
                    return None;
                }
                scales[r * nb + b] = d;
            }
        }
        let pivot = u[i * k + i];
        for r in 0..rows {
            let d = scales[r * nb + b].to_f64();
            let v = work[r * k + i];
            let q = code(format, v, d);
            codes[r * k + i] = q;
            let err = (v - value(format, q, d)) / pivot;
            if err != 0.0 {
                let row = &mut work[r * k..(r + 1) * k];
                for j in i + 1..k {
                    row[j] -= err * u[i * k + j];
                }
            }
        }
    }
    let mut out = Vec::with_capacity(rows * format.row_bytes(k));
    for r in 0..rows {
        for b in 0..nb {
            out.extend_from_slice(&scales[r * nb + b].to_bits().to_le_bytes());
            let c = &codes[r * k + b * BLOCK..r * k + (b + 1) * BLOCK];
            match format {
                BlockFormat::Q4_0 => out.extend((0..BLOCK / 2).map(|t| (c[t] as u8) | ((c[t + BLOCK / 2] as u8) << 4))),
                BlockFormat::Q8_0 => out.extend(c.iter().map(|&q| q as i8 as u8)),
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::blockquant_format::{pack, pack_searched, unpack};

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// With identity H the result is plain rounding, byte for byte.
    #[test]
    fn identity_hessian_is_plain_rounding() {
        let (rows, k) = (4, 64);
        let w = lcg(rows * k, 1);
        let mut h = vec![0f64; k * k];
        for i in 0..k {
            h[i * k + i] = 1.0;
        }
        for f in [BlockFormat::Q4_0, BlockFormat::Q8_0] {
            // Dampening scales H uniformly, which does not change the rounding.
            assert_eq!(quantize(f, &w, k, h.clone()).unwrap(), pack_searched(f, &w, k).unwrap());
        }
    }

    /// On correlated calibration inputs, the output error is lower than plain rounding's.
    #[test]
    fn lowers_the_output_error_on_calibration_inputs() {
        let (rows, k, m) = (16, 64, 256);
        let w = lcg(rows * k, 2);
        // Inputs with a strong shared component, as activations have.
        let base = lcg(m, 3);
        let noise = lcg(m * k, 4);
        let x: Vec<f32> = (0..m * k).map(|i| base[i / k] * (1.0 + (i % k) as f32 / k as f32) + 0.3 * noise[i]).collect();
        let err = |q: &[f32]| -> f64 {
            let mut e = 0.0;
            for xr in x.chunks(k) {
                for r in 0..rows {
                    let d: f64 = (0..k).map(|t| xr[t] as f64 * (w[r * k + t] - q[r * k + t]) as f64).sum();
                    e += d * d;
                }
            }
            e
        };
        let plain = unpack(BlockFormat::Q4_0, &pack(BlockFormat::Q4_0, &w, k).unwrap());
        let gptq = unpack(BlockFormat::Q4_0, &quantize(BlockFormat::Q4_0, &w, k, hessian(&x, k)).unwrap());
        assert!(err(&gptq) < 0.7 * err(&plain), "gptq {} vs plain {}", err(&gptq), err(&plain));
    }
}
