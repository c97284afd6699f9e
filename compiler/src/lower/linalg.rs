//! Lowering of the linalg family: MatMul, Gemm, MatMulInteger and Det (Einsum lives in
//! `lower/einsum.rs`).
//!
//! Products are loop nests `(batch, i, k, j)` with `j` innermost, so the innermost loop
//! walks a row of B and a row of the output contiguously. When the output buffer holds
//! the accumulator type exactly (f32, f64, i32, i64) the sum accumulates in the output
//! row; otherwise (f16/bf16, 8/16-bit integers) a store would round every partial sum,
//! so each element accumulates in a variable over `k` instead ([`MatMulDims::emit`]).

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{broadcast, iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::linalg::{Gemm, LinalgOp};

pub fn lower(
    op: &LinalgOp,
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    outs: &[Option<Operand>],
) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    match op {
        LinalgOp::MatMul => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let ty = a.kty()?;
            let s = MatMulDims::new(a.shape(), b.shape())?;
            let mut k = cx.kernel("");
            s.emit(&mut k, ty, y, None, |_, ai, bi| (e::load(a.buf, ai), e::load(b.buf, bi)));
            cx.emit(k.finish());
            Ok(())
        }
        LinalgOp::MatMulInteger => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let s = MatMulDims::new(a.shape(), b.shape())?;
            let a_zp = ZeroPointArg::new(ins.get(2), s.m, "a_zero_point")?;
            let b_zp = ZeroPointArg::new(ins.get(3), s.n, "b_zero_point")?;
            let mut k = cx.kernel("");
            s.emit(&mut k, Ty::I32, y, None, |ix, ai, bi| {
                (e::sub(e::load(a.buf, ai), a_zp.at(ix.i.clone())), e::sub(e::load(b.buf, bi), b_zp.at(ix.j.clone())))
            });
            cx.emit(k.finish());
            Ok(())
        }
        LinalgOp::Gemm(g) => lower_gemm(g, cx, ins, y),
        LinalgOp::Einsum(e) => super::einsum::lower(e, cx, ins, outs),
        LinalgOp::Det => lower_det(cx, input(ins, 0)?, y),
    }
}

pub(super) fn input(ins: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    ins.get(i).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("input {i} is missing")))
}

pub(super) fn output(outs: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    outs.get(i).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("output {i} is missing")))
}

/// The additive identity of `ty`.
pub(super) fn zero(ty: Ty) -> Expr {
    match ty {
        Ty::F32 => e::f32(0.0),
        Ty::F64 => e::f64(0.0),
        Ty::I32 => e::i32(0),
        Ty::I64 => e::i64(0),
        Ty::Index => e::idx(0),
        Ty::Bool => e::bool(false),
    }
}

/// A float constant of `ty` (F32 or F64).
pub(super) fn flit(ty: Ty, v: f64) -> Expr {
    if ty == Ty::F64 {
        e::f64(v)
    } else {
        e::f32(v as f32)
    }
}

/// `acc + a * b`: fused for floats (one rounding), wrapping for integers.
pub(super) fn mac(ty: Ty, acc: Expr, a: Expr, b: Expr) -> Expr {
    if ty.is_float() {
        e::fma(a, b, acc)
    } else {
        e::add(acc, e::mul(a, b))
    }
}

/// True when a buffer of `dtype` stores values of `ty` unchanged, so partial sums can
/// live in it.
pub(super) fn holds_exactly(dtype: DType, ty: Ty) -> bool {
    matches!((dtype, ty), (DType::F32, Ty::F32) | (DType::F64, Ty::F64) | (DType::I32, Ty::I32) | (DType::I64, Ty::I64))
}

/// A zero point of the integer products: absent, one value, or one per row (A) or
/// column (B), loaded at run time.
pub(super) enum ZeroPointArg {
    None,
    Scalar(BufId),
    PerIndex(BufId),
}

impl ZeroPointArg {
    /// From the optional operand `op`; `per` is the count of a per-row/column one.
    pub fn new(op: Option<&Option<Operand>>, per: usize, what: &str) -> Result<Self, OpError> {
        match op.and_then(Option::as_ref) {
            None => Ok(ZeroPointArg::None),
            Some(z) if Ty::of_storage(z.ty.dtype) != Some(Ty::I32) => {
                Err(OpError::unsupported(format!("{what} of type {}", z.ty.dtype)))
            }
            Some(z) if z.len() == 1 => Ok(ZeroPointArg::Scalar(z.buf)),
            Some(z) if z.len() == per => Ok(ZeroPointArg::PerIndex(z.buf)),
            Some(z) => Err(OpError::invalid(format!("{what} has {} values; 1 or {per} expected", z.len()))),
        }
    }

    /// The zero point of row/column `i`.
    pub fn at(&self, i: Expr) -> Expr {
        match self {
            ZeroPointArg::None => e::i32(0),
            ZeroPointArg::Scalar(b) => e::load(*b, e::idx(0)),
            ZeroPointArg::PerIndex(b) => e::load(*b, i),
        }
    }
}

/// The loop indices of one product term, for operand loaders.
pub(super) struct MatIx {
    pub i: Expr,
    pub j: Expr,
}

/// numpy `matmul` shapes: 1-D operands promoted, batch axes broadcast.
pub(super) struct MatMulDims {
    pub batch: Vec<usize>,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl MatMulDims {
    pub fn new(a: &[usize], b: &[usize]) -> Result<Self, OpError> {
        if a.is_empty() || b.is_empty() {
            return Err(OpError::invalid("MatMul operands must have rank >= 1"));
        }
        let (m, ka) = if a.len() == 1 { (1, a[0]) } else { (a[a.len() - 2], a[a.len() - 1]) };
        let (kb, n) = if b.len() == 1 { (b[0], 1) } else { (b[b.len() - 2], b[b.len() - 1]) };
        if ka != kb {
            return Err(OpError::invalid(format!("MatMul inner dimensions differ: {a:?} x {b:?}")));
        }
        let ab = &a[..a.len().saturating_sub(2)];
        let bb = &b[..b.len().saturating_sub(2)];
        let rank = ab.len().max(bb.len());
        let align = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
        let (a_batch, b_batch) = (align(ab), align(bb));
        let mut batch = Vec::with_capacity(rank);
        for (&x, &y) in a_batch.iter().zip(&b_batch) {
            batch.push(match (x, y) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(OpError::invalid(format!("MatMul batch axes do not broadcast: {a:?} x {b:?}"))),
            });
        }
        Ok(MatMulDims { batch, a_batch, b_batch, m, k: ka, n })
    }

    /// `y[batch, i, j] = finish(sum_p A'[i, p] * B'[p, j])` in `ty`, where `load(ix,
    /// a_index, b_index)` gives the two factors (so callers can subtract zero points)
    /// and `finish` (default: identity) maps the sum to the stored value.
    pub fn emit(
        &self,
        kb: &mut KernelBuilder,
        ty: Ty,
        y: &Operand,
        finish: Option<&dyn Fn(Expr) -> Expr>,
        load: impl Fn(&MatIx, Expr, Expr) -> (Expr, Expr),
    ) {
        let (m, k, n) = (self.m, self.k, self.n);
        let in_place = finish.is_none() && holds_exactly(y.ty.dtype, ty);
        kb.for_shape(&self.batch, |kb, bix| {
            let a0 = imul(broadcast(&self.a_batch, bix), (m * k) as i64);
            let b0 = imul(broadcast(&self.b_batch, bix), (k * n) as i64);
            let y0 = imul(linear(&self.batch, bix), (m * n) as i64);
            kb.for_(m, |kb, i| {
                let row = iadd(y0.clone(), imul(i.clone(), n as i64));
                let a_at = |p: Expr| iadd(a0.clone(), iadd(imul(i.clone(), k as i64), p));
                let b_at = |p: Expr, j: Expr| iadd(b0.clone(), iadd(imul(p, n as i64), j));
                if in_place {
                    kb.for_(n, |kb, j| kb.store(y.buf, iadd(row.clone(), j), zero(ty)));
                    kb.for_(k, |kb, p| {
                        let av = kb.var(ty);
                        // A's factor is loop-invariant in j: loaded once per (i, p).
                        let (a_val, _) =
                            load(&MatIx { i: i.clone(), j: e::idx(0) }, a_at(p.clone()), b_at(p.clone(), e::idx(0)));
                        kb.set(av, a_val);
                        kb.for_(n, |kb, j| {
                            let ix = MatIx { i: i.clone(), j: j.clone() };
                            let (_, b_val) = load(&ix, a_at(p.clone()), b_at(p.clone(), j.clone()));
                            let at = iadd(row.clone(), j);
                            kb.store(y.buf, at.clone(), mac(ty, e::load(y.buf, at), e::var(av), b_val));
                        });
                    });
                } else {
                    kb.for_(n, |kb, j| {
                        let acc = kb.let_(ty, zero(ty));
                        kb.for_(k, |kb, p| {
                            let ix = MatIx { i: i.clone(), j: j.clone() };
                            let (a_val, b_val) = load(&ix, a_at(p.clone()), b_at(p, j.clone()));
                            kb.set(acc, mac(ty, e::var(acc), a_val, b_val));
                        });
                        let v = finish.map_or(e::var(acc), |f| f(e::var(acc)));
                        kb.store(y.buf, iadd(row.clone(), j), v);
                    });
                }
            });
        });
    }
}

/// Gemm: `alpha * A' @ B' + beta * C`, C broadcast to `[M, N]`. Float data is computed
/// in F32 (F64 for f64 tensors); integer data exactly with wrapping, which needs
/// integral alpha and beta (the reference switches to floats otherwise).
fn lower_gemm(g: &Gemm, cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (a, b) = (input(ins, 0)?, input(ins, 1)?);
    let c = ins.get(2).and_then(Option::as_ref);
    let ty = a.kty()?;
    let (&[m, n], [ar, ac], [_, _]) = (y.shape(), a.shape(), b.shape()) else {
        return Err(OpError::invalid("Gemm operands must be 2-D"));
    };
    let k = if g.trans_a { *ar } else { *ac };
    let (alpha, beta) = if ty.is_float() {
        (flit(ty, g.alpha), flit(ty, g.beta))
    } else if g.alpha.fract() == 0.0 && g.beta.fract() == 0.0 && g.alpha.abs() < 2e9 && g.beta.abs() < 2e9 {
        let lit = |v: f64| if ty == Ty::I64 { e::i64(v as i64) } else { e::i32(v as i32) };
        (lit(g.alpha), lit(g.beta))
    } else {
        return Err(OpError::unsupported("integer Gemm with a fractional alpha or beta"));
    };
    let a_at = |i: Expr, p: Expr| if g.trans_a { iadd(imul(p, m as i64), i) } else { iadd(imul(i, k as i64), p) };
    let b_at = |p: Expr, j: Expr| if g.trans_b { iadd(imul(j, k as i64), p) } else { iadd(imul(p, n as i64), j) };
    let in_place = holds_exactly(y.ty.dtype, ty);
    let mut kb = cx.kernel("");
    kb.for_(m, |kb, i| {
        let row = imul(i.clone(), n as i64);
        // `alpha * dot + beta * C[i, j]`.
        let finish = |dot: Expr, j: Expr| {
            let mut v = e::mul(dot, alpha.clone());
            if let Some(c) = c.filter(|_| g.beta != 0.0) {
                let cv = e::load(c.buf, broadcast(c.shape(), &[i.clone(), j]));
                v = e::add(v, e::mul(cv, beta.clone()));
            }
            v
        };
        if in_place {
            kb.for_(n, |kb, j| kb.store(y.buf, iadd(row.clone(), j), zero(ty)));
            kb.for_(k, |kb, p| {
                let av = kb.let_(ty, e::load(a.buf, a_at(i.clone(), p.clone())));
                kb.for_(n, |kb, j| {
                    let at = iadd(row.clone(), j.clone());
                    let v = mac(ty, e::load(y.buf, at.clone()), e::var(av), e::load(b.buf, b_at(p.clone(), j)));
                    kb.store(y.buf, at, v);
                });
            });
            kb.for_(n, |kb, j| {
                let at = iadd(row.clone(), j.clone());
                kb.store(y.buf, at.clone(), finish(e::load(y.buf, at), j));
            });
        } else {
            kb.for_(n, |kb, j| {
                let acc = kb.let_(ty, zero(ty));
                kb.for_(k, |kb, p| {
                    let v = mac(
                        ty,
                        e::var(acc),
                        e::load(a.buf, a_at(i.clone(), p.clone())),
                        e::load(b.buf, b_at(p, j.clone())),
                    );
                    kb.set(acc, v);
                });
                kb.store(y.buf, iadd(row.clone(), j.clone()), finish(e::var(acc), j));
            });
        }
    });
    cx.emit(kb.finish());
    Ok(())
}

/// Det: LU decomposition with partial pivoting of each matrix, in a scratch copy (the
/// input must stay intact). Singular matrices (a zero pivot) give 0.
fn lower_det(cx: &mut LowerCx, x: &Operand, y: &Operand) -> Result<(), OpError> {
    let ty = x.kty()?;
    if !ty.is_float() {
        return Err(OpError::unsupported(format!("Det of {}", x.ty.dtype)));
    }
    let n = match x.shape() {
        [.., r, c] if r == c => *c,
        s => return Err(OpError::invalid(format!("Det needs [..., n, n], got {s:?}"))),
    };
    let count = y.len();
    let work_dtype = if ty == Ty::F64 { DType::F64 } else { DType::F32 };
    let lu = cx.scratch("lu", work_dtype, vec![n * n]);
    let mut kb = cx.kernel("");
    let nn = n as i64;
    kb.for_(count, |kb, bi| {
        let base = imul(bi.clone(), nn * nn);
        kb.for_(n * n, |kb, t| kb.store(lu, t.clone(), e::load(x.buf, iadd(base.clone(), t))));
        let det = kb.let_(ty, flit(ty, 1.0));
        let at = |row: Expr, col: Expr| iadd(imul(row, nn), col);
        kb.for_(n, |kb, c| {
            // Pivot: the first row with the largest |a[row, c]| at or below c.
            let piv = kb.let_(Ty::Index, c.clone());
            let best = kb.let_(ty, e::un(UnOp::Abs, e::load(lu, at(c.clone(), c.clone()))));
            kb.for_(n, |kb, rr| {
                let v = e::un(UnOp::Abs, e::load(lu, at(rr.clone(), c.clone())));
                let cond = e::bin(
                    BinOp::And,
                    e::bin(BinOp::Gt, rr.clone(), c.clone()),
                    e::bin(BinOp::Gt, v.clone(), e::var(best)),
                );
                kb.if_(
                    cond,
                    |kb| {
                        kb.set(piv, rr.clone());
                        kb.set(best, v);
                    },
                    |_| {},
                );
            });
            kb.if_(
                e::bin(BinOp::Ne, e::var(piv), c.clone()),
                |kb| {
                    kb.for_(n, |kb, j| {
                        let t = kb.let_(ty, e::load(lu, at(c.clone(), j.clone())));
                        kb.store(lu, at(c.clone(), j.clone()), e::load(lu, at(e::var(piv), j.clone())));
                        kb.store(lu, at(e::var(piv), j), e::var(t));
                    });
                    kb.set(det, e::un(UnOp::Neg, e::var(det)));
                },
                |_| {},
            );
            let p = kb.let_(ty, e::load(lu, at(c.clone(), c.clone())));
            kb.set(det, e::mul(e::var(det), e::var(p)));
            kb.if_(
                e::bin(BinOp::Ne, e::var(p), zero(ty)),
                |kb| {
                    kb.for_(n, |kb, rr| {
                        kb.if_(
                            e::bin(BinOp::Gt, rr.clone(), c.clone()),
                            |kb| {
                                let f = kb.let_(ty, e::div(e::load(lu, at(rr.clone(), c.clone())), e::var(p)));
                                kb.for_(n, |kb, j| {
                                    let v = e::sub(
                                        e::load(lu, at(rr.clone(), j.clone())),
                                        e::mul(e::var(f), e::load(lu, at(c.clone(), j.clone()))),
                                    );
                                    kb.store(lu, at(rr.clone(), j), v);
                                });
                            },
                            |_| {},
                        );
                    });
                },
                |_| {},
            );
        });
        kb.store(y.buf, bi, e::var(det));
    });
    cx.emit(kb.finish());
    Ok(())
}

#[cfg(test)]
#[path = "linalg_testkit.rs"]
pub(super) mod testkit;

#[cfg(test)]
mod tests {
    use super::testkit::run_op;
    use super::*;
    use crate::ir::{Tensor, TypeInfo};

    #[test]
    fn matmul_broadcasts_batch_axes() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..6).map(|v| (v as f32) - 2.0).collect();
        let ins = [Tensor::from_vec(&[2, 2, 3], a.clone()), Tensor::from_vec(&[1, 3, 2], b.clone())];
        let y =
            run_op(&ins, &[TypeInfo::new(DType::F32, vec![2, 2, 2])], |cx, i, o| lower(&LinalgOp::MatMul, cx, i, o));
        let mut want = Vec::new();
        for bi in 0..2 {
            for i in 0..2 {
                for j in 0..2 {
                    want.push((0..3).map(|p| a[bi * 6 + i * 3 + p] * b[p * 2 + j]).sum::<f32>());
                }
            }
        }
        assert_eq!(y[0], Tensor::from_vec(&[2, 2, 2], want));
    }

    #[test]
    fn matmul_integer_subtracts_per_column_zero_points() {
        let ins = [
            Tensor::from_vec(&[2, 2], vec![1u8, 2, 3, 4]),
            Tensor::from_vec(&[2, 2], vec![5u8, 6, 7, 8]),
            Tensor::from_vec(&[1], vec![1u8]),
            Tensor::from_vec(&[2], vec![5u8, 6]),
        ];
        let y = run_op(&ins, &[TypeInfo::new(DType::I32, vec![2, 2])], |cx, i, o| {
            lower(&LinalgOp::MatMulInteger, cx, i, o)
        });
        // (A - 1) = [[0, 1], [2, 3]], (B - [5, 6]) = [[0, 0], [2, 2]].
        assert_eq!(y[0], Tensor::from_vec(&[2, 2], vec![2i32, 2, 6, 6]));
    }

    #[test]
    fn det_pivots_rows() {
        let ins = [Tensor::from_vec(&[2, 2, 2], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.5])];
        let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![2])], |cx, i, o| lower(&LinalgOp::Det, cx, i, o));
        assert_eq!(y[0], Tensor::from_vec(&[2], vec![-2.0f32, 2.0]));
    }
}
