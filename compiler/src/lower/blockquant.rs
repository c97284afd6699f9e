//! Lowering of the block-quantized ops (`QMatMul`, `QGather`) to KIR.
//!
//! The packed weight is a `uint8` weight buffer holding llama.cpp's blocks (see
//! `ops::blockquant_format`); kernels read it in place, a block at a time: the float16
//! scale is assembled from its two bytes and converted to f32 with integer and bit
//! operations once per block, then each byte is split into its codes (two nibbles for
//! Q4_0, one signed byte for Q8_0), converted to f32 and multiplied — the weights never
//! exist as floats in memory. `QMatMul` is a dot product per output element: the 32
//! products of a block are summed first and the sum scaled by `d` once (`acc += d *
//! sum q * a`), which is how llama.cpp's kernels factor the scale out too.

use super::shape::util::{checked_index, input, needs_check, opt_input, output};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{broadcast, iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty};
use crate::ops::blockquant::BlockQuantOp;
use crate::ops::blockquant_format::{BlockFormat, BLOCK};

pub fn lower(op: &BlockQuantOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    match *op {
        BlockQuantOp::MatMul { format, k, n, alpha, beta } => {
            let (a, w) = (input(ins, 0)?, input(ins, 1)?);
            let c = opt_input(ins, 2);
            qmatmul(cx, format, (k, n), (alpha, beta), a, w, c, y)
        }
        BlockQuantOp::Gather { format, rows, cols } => qgather(cx, format, (rows, cols), input(ins, 0)?, input(ins, 1)?, y),
    }
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    e::bin(op, a, b)
}

/// The float16 scale stored little-endian at byte `at` of `w`, as an F32 variable.
/// Scales are finite (the packer refuses others), so only normal numbers, subnormals
/// and zero need handling.
pub(crate) fn scale(k: &mut KernelBuilder, w: BufId, at: Expr) -> Expr {
    let h = k.let_(Ty::I32, bin(BinOp::Or, e::load(w, at.clone()), bin(BinOp::Shl, e::load(w, iadd(at, e::idx(1))), e::i32(8))));
    let h = e::var(h);
    let sign = bin(BinOp::Shl, bin(BinOp::And, h.clone(), e::i32(0x8000)), e::i32(16));
    let sign = e::var(k.let_(Ty::I32, sign));
    let exp = bin(BinOp::And, bin(BinOp::UShr, h.clone(), e::i32(10)), e::i32(31));
    let mant = e::var(k.let_(Ty::I32, bin(BinOp::And, h.clone(), e::i32(0x3FF))));
    let exp = e::var(k.let_(Ty::I32, exp));
    // Normal: exponent rebiased from 15 to 127, mantissa moved up 13 bits.
    let normal = bin(
        BinOp::Or,
        bin(BinOp::Shl, e::add(exp.clone(), e::i32(127 - 15)), e::i32(23)),
        bin(BinOp::Shl, mant.clone(), e::i32(13)),
    );
    // Subnormal (and zero): mantissa × 2^-24, exact in f32.
    let sub = Expr::Bitcast(Ty::I32, Box::new(e::mul(e::cast(Ty::F32, mant), e::f32((2f32).powi(-24)))));
    let bits = bin(BinOp::Or, sign, e::select(bin(BinOp::Eq, exp, e::i32(0)), sub, normal));
    e::var(k.let_(Ty::F32, Expr::Bitcast(Ty::F32, Box::new(bits))))
}

/// Calls `f(t, code)` for the 32 codes of the block at byte `base` of `w`: `code` is the
/// element's integer value (`q - 8` for Q4_0, `q` for Q8_0) as F32, `t` its position.
fn for_codes(k: &mut KernelBuilder, format: BlockFormat, w: BufId, base: Expr, mut f: impl FnMut(&mut KernelBuilder, Expr, Expr)) {
    match format {
        BlockFormat::Q4_0 => k.for_(BLOCK / 2, |k, t| {
            let byte = e::var(k.let_(Ty::I32, e::load(w, iadd(iadd(base.clone(), e::idx(2)), t.clone()))));
            let lo = e::cast(Ty::F32, e::sub(bin(BinOp::And, byte.clone(), e::i32(15)), e::i32(8)));
            let hi = e::cast(Ty::F32, e::sub(bin(BinOp::UShr, byte, e::i32(4)), e::i32(8)));
            f(k, t.clone(), lo);
            f(k, iadd(t, e::idx(BLOCK as i64 / 2)), hi);
        }),
        // Loads of uint8 widen to 0..=255; the code is the byte as a signed int8.
        BlockFormat::Q8_0 => k.for_(BLOCK, |k, t| {
            let byte = e::load(w, iadd(iadd(base.clone(), e::idx(2)), t.clone()));
            let q = bin(BinOp::Shr, bin(BinOp::Shl, byte, e::i32(24)), e::i32(24));
            f(k, t, e::cast(Ty::F32, q));
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn qmatmul(
    cx: &mut LowerCx,
    format: BlockFormat,
    (kk, n): (usize, usize),
    (alpha, beta): (f32, f32),
    a: &Operand,
    w: &Operand,
    c: Option<&Operand>,
    y: &Operand,
) -> Result<(), OpError> {
    if a.ty.dtype != crate::ir::DType::F32 || a.shape().last() != Some(&kk) || y.len() != a.len() / kk.max(1) * n {
        return Err(OpError::invalid("QMatMul operands do not match its dimensions"));
    }
    let rows = a.len() / kk;
    let (nb, bb) = (kk / BLOCK, format.block_bytes());
    let mut k = cx.kernel("");
    k.for_shape(&[rows, n], |k, ix| {
        let (r, j) = (ix[0].clone(), ix[1].clone());
        let acc = k.let_(Ty::F32, e::f32(0.0));
        k.for_(nb, |k, b| {
            let base = e::var(k.let_(Ty::Index, iadd(imul(j.clone(), (nb * bb) as i64), imul(b.clone(), bb as i64))));
            let d = scale(k, w.buf, base.clone());
            let sum = k.let_(Ty::F32, e::f32(0.0));
            let a0 = iadd(imul(r.clone(), kk as i64), imul(b, BLOCK as i64));
            for_codes(k, format, w.buf, base, |k, t, q| {
                let x = e::load(a.buf, iadd(a0.clone(), t));
                k.set(sum, e::fma(x, q, e::var(sum)));
            });
            k.set(acc, e::fma(d, e::var(sum), e::var(acc)));
        });
        let mut v = e::var(acc);
        if alpha != 1.0 {
            v = e::mul(v, e::f32(alpha));
        }
        if let Some(c) = c {
            let cv = e::load(c.buf, broadcast(c.shape(), &[r.clone(), j.clone()]));
            v = e::fma(cv, e::f32(beta), v);
        }
        k.store(y.buf, iadd(imul(r, n as i64), j), v);
    });
    cx.emit(k.finish());
    Ok(())
}

fn qgather(cx: &mut LowerCx, format: BlockFormat, (rows, cols): (usize, usize), w: &Operand, ind: &Operand, y: &Operand) -> Result<(), OpError> {
    if y.len() != ind.len() * cols {
        return Err(OpError::invalid("QGather output does not match the table and indices"));
    }
    let check = needs_check(ind, rows)?;
    let (nb, bb) = (cols / BLOCK, format.block_bytes());
    let mut k = cx.kernel("");
    k.for_(ind.len(), |k, q| {
        let pos = checked_index(k, e::load(ind.buf, q.clone()), rows, check);
        k.for_(nb, |k, b| {
            let base = e::var(k.let_(Ty::Index, iadd(imul(pos.clone(), (nb * bb) as i64), imul(b.clone(), bb as i64))));
            let d = scale(k, w.buf, base.clone());
            let o0 = iadd(imul(q.clone(), cols as i64), imul(b, BLOCK as i64));
            for_codes(k, format, w.buf, base, |k, t, v| {
                k.store(y.buf, iadd(o0.clone(), t), e::mul(d.clone(), v));
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{DType, Tensor, TypeInfo};
    use crate::ops::blockquant_format::{pack, unpack};

    /// Deterministic test values in [-1, 1), with some rows scaled down to make
    /// float16-subnormal scales (row 1) and an all-zero block (row 2, zero scale).
    fn weights(rows: usize, k: usize) -> Vec<f32> {
        (0..rows * k)
            .map(|i| {
                let v = ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
                match i / k {
                    1 => v * 1e-6,
                    2 if i % k < 32 => 0.0,
                    _ => v,
                }
            })
            .collect()
    }

    fn packed(format: BlockFormat, w: &[f32], rows: usize, k: usize) -> (Tensor, Vec<f32>) {
        let bytes = pack(format, w, k).unwrap();
        let deq = unpack(format, &bytes);
        (Tensor::from_vec(&[rows, format.row_bytes(k)], bytes), deq)
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((*g as f64 - w).abs() <= 1e-5 + 1e-5 * w.abs(), "element {i}: {g} vs {w}");
        }
    }

    #[test]
    fn qmatmul_matches_float_product_with_dequantized_weights() {
        let (m, k, n) = (3, 96, 40);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32 / 48.0) - 1.0).collect();
        let c: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
        for format in [BlockFormat::Q4_0, BlockFormat::Q8_0] {
            let w = weights(n, k);
            let (wt, deq) = packed(format, &w, n, k);
            for (alpha, beta, bias) in [(1.0f32, 1.0f32, false), (0.5, 2.0, true)] {
                let op = BlockQuantOp::MatMul { format, k, n, alpha, beta };
                let mut inputs = vec![Tensor::from_vec(&[m, k], a.clone()), wt.clone()];
                if bias {
                    inputs.push(Tensor::from_vec(&[n], c.clone()));
                }
                let out = run_op(&inputs, &[TypeInfo::new(DType::F32, vec![m, n])], |cx, ins, outs| lower(&op, cx, ins, outs));
                let got = out[0].to_f32_array().iter().copied().collect::<Vec<f32>>();
                let want: Vec<f64> = (0..m * n)
                    .map(|x| {
                        let (r, j) = (x / n, x % n);
                        let dot: f64 = (0..k).map(|t| a[r * k + t] as f64 * deq[j * k + t] as f64).sum();
                        alpha as f64 * dot + if bias { beta as f64 * c[j] as f64 } else { 0.0 }
                    })
                    .collect();
                close(&got, &want);
                // The reference evaluator agrees too.
                let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
                let ev = crate::ops::Semantics::eval(&op, &refs).unwrap();
                close(&ev[0].to_f32_array().iter().copied().collect::<Vec<f32>>(), &want);
            }
        }
    }

    #[test]
    fn qgather_matches_dequantized_rows() {
        let (rows, cols) = (5, 64);
        for format in [BlockFormat::Q4_0, BlockFormat::Q8_0] {
            let w = weights(rows, cols);
            let (wt, deq) = packed(format, &w, rows, cols);
            let idx = Tensor::from_vec(&[2, 2], vec![4i64, 0, -4, 2]);
            let op = BlockQuantOp::Gather { format, rows, cols };
            let out = run_op(&[wt.clone(), idx.clone()], &[TypeInfo::new(DType::F32, vec![2, 2, cols])], |cx, ins, outs| {
                lower(&op, cx, ins, outs)
            });
            let got = out[0].to_f32_array().iter().copied().collect::<Vec<f32>>();
            let want: Vec<f64> = [4usize, 0, 1, 2].iter().flat_map(|&r| deq[r * cols..(r + 1) * cols].iter().map(|&v| v as f64)).collect();
            // Exact: one f16→f32 conversion and one product per element, as in unpack.
            assert_eq!(got.iter().map(|&v| v as f64).collect::<Vec<_>>(), want);
        }
    }
}
