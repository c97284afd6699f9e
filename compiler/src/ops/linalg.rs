//! The linalg family: MatMul, Gemm, MatMulInteger, Einsum and Det.
//!
//! Float products accumulate in `f64` and are rounded once to the output type; integer
//! products accumulate in wrapping `i64`, whose low bits are the narrower type's
//! wrap-around result.

#[path = "linalg_num.rs"]
pub(super) mod num;

#[path = "linalg_einsum.rs"]
mod einsum;

use super::util::{input, opt_input};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};
use num::{
    expect_float, expect_numeric, from_f64, from_i64, from_vals, int_values, matmul_shape, matmul_vals, round_to, vals,
    Vals,
};

pub use einsum::{Einsum, EinsumLabels};

#[derive(Clone, Debug)]
pub enum LinalgOp {
    /// numpy `matmul`: 1-D operands promoted, batch axes broadcast.
    MatMul,
    Gemm(Gemm),
    /// `(A - a_zero_point) @ (B - b_zero_point)` in int32.
    MatMulInteger,
    Einsum(Einsum),
    /// Determinant of the trailing square matrices.
    Det,
}

#[derive(Clone, Debug)]
pub struct Gemm {
    pub alpha: f64,
    pub beta: f64,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = match ctx.op_type {
        _ if !ctx.is_default_domain() => return None,
        "MatMul" => Ok(LinalgOp::MatMul),
        "Gemm" => parse_gemm(ctx),
        "MatMulInteger" => Ok(LinalgOp::MatMulInteger),
        "Einsum" => einsum::parse(ctx).map(LinalgOp::Einsum),
        "Det" => Ok(LinalgOp::Det),
        _ => return None,
    };
    Some(op.map(Op::Linalg))
}

fn parse_gemm(ctx: &NodeCtx) -> Result<LinalgOp, OpError> {
    // Before opset 7 a `broadcast` attribute gated C's broadcasting; with broadcast=0 C
    // must already have the output shape, which the unidirectional check also accepts.
    Ok(LinalgOp::Gemm(Gemm {
        alpha: ctx.float_or("alpha", 1.0)? as f64,
        beta: ctx.float_or("beta", 1.0)? as f64,
        trans_a: ctx.int_or("transA", 0)? != 0,
        trans_b: ctx.int_or("transB", 0)? != 0,
    }))
}

impl Semantics for LinalgOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            LinalgOp::MatMul => infer_matmul(ctx),
            LinalgOp::Gemm(g) => g.infer(ctx),
            LinalgOp::MatMulInteger => infer_matmul_integer(ctx),
            LinalgOp::Einsum(e) => e.infer(ctx),
            LinalgOp::Det => infer_det(ctx),
        }
    }
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            LinalgOp::MatMul => eval_matmul(inputs),
            LinalgOp::Gemm(g) => g.eval(inputs),
            LinalgOp::MatMulInteger => eval_matmul_integer(inputs),
            LinalgOp::Einsum(e) => e.eval(inputs),
            LinalgOp::Det => eval_det(inputs),
        }
    }
}

// ---- MatMul ----

fn infer_matmul(ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    expect_numeric("MatMul input", a.dtype)?;
    if a.dtype != b.dtype {
        return Err(OpError::invalid(format!("MatMul inputs differ in type: {} and {}", a.dtype, b.dtype)));
    }
    Ok(vec![TypeInfo::new(a.dtype, matmul_shape(&a.shape, &b.shape)?.out)])
}

fn eval_matmul(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
    expect_numeric("MatMul input", a.dtype())?;
    let s = matmul_shape(a.shape(), b.shape())?;
    let out = matmul_vals(&s, &vals(a), &vals(b))?;
    Ok(vec![from_vals(a.dtype(), &s.out, out)])
}

// ---- MatMulInteger ----

fn infer_matmul_integer(ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    for t in [a, b] {
        if !matches!(t.dtype, DType::U8 | DType::I8) {
            return Err(OpError::unsupported(format!("MatMulInteger input of type {}", t.dtype)));
        }
    }
    Ok(vec![TypeInfo::new(DType::I32, matmul_shape(&a.shape, &b.shape)?.out)])
}

/// Subtracts a zero point that is a scalar or, with `per` = (count, stride), one value
/// per index `(i / stride) % count` (A's rows or B's columns).
pub(super) fn sub_zero_point(v: &mut [i64], zp: Option<&Tensor>, per: (usize, usize)) -> Result<(), OpError> {
    let Some(zp) = zp else { return Ok(()) };
    let z = int_values(zp).ok_or_else(|| OpError::invalid("zero point must be an integer tensor"))?;
    match z.len() {
        1 => v.iter_mut().for_each(|x| *x -= z[0]),
        n if n == per.0 && per.1 > 0 => {
            for (i, x) in v.iter_mut().enumerate() {
                *x -= z[(i / per.1) % n];
            }
        }
        n => return Err(OpError::invalid(format!("zero point has {n} values; expected 1 or {}", per.0))),
    }
    Ok(())
}

/// `(A - a_zp) @ (B - b_zp)` exactly in i64; the zero points are scalars, one per row
/// of A, or one per column of B.
pub(super) fn integer_matmul(
    a: &Tensor,
    b: &Tensor,
    a_zp: Option<&Tensor>,
    b_zp: Option<&Tensor>,
) -> Result<(Vec<i64>, Vec<usize>), OpError> {
    let s = matmul_shape(a.shape(), b.shape())?;
    let not_int = || OpError::invalid("integer matmul inputs must be integer tensors");
    let mut av = int_values(a).ok_or_else(not_int)?;
    let mut bv = int_values(b).ok_or_else(not_int)?;
    sub_zero_point(&mut av, a_zp, (s.m, s.k))?;
    sub_zero_point(&mut bv, b_zp, (s.n, 1))?;
    match matmul_vals(&s, &Vals::I(av), &Vals::I(bv))? {
        Vals::I(v) => Ok((v, s.out)),
        Vals::F(_) => Err(not_int()),
    }
}

fn eval_matmul_integer(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (v, shape) = integer_matmul(input(inputs, 0)?, input(inputs, 1)?, opt_input(inputs, 2), opt_input(inputs, 3))?;
    Ok(vec![from_i64(DType::I32, &shape, v)])
}

// ---- Gemm ----

impl Gemm {
    /// (M, K, N) after the transposes; both operands must be 2-D.
    fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize), OpError> {
        if a.len() != 2 || b.len() != 2 {
            return Err(OpError::invalid(format!("Gemm operands must be 2-D, got {a:?} and {b:?}")));
        }
        let (m, k) = if self.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (kb, n) = if self.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        if k != kb {
            return Err(OpError::invalid(format!("Gemm inner dimensions differ: {a:?} and {b:?}")));
        }
        num::numel(&[m, n])?;
        Ok((m, k, n))
    }

    /// C must broadcast unidirectionally to (M, N).
    fn check_c(c: &[usize], m: usize, n: usize) -> Result<(), OpError> {
        let ok = c.len() <= 2 && c.iter().rev().zip([n, m]).all(|(&d, o)| d == 1 || d == o);
        if ok {
            Ok(())
        } else {
            Err(OpError::invalid(format!("Gemm C of shape {c:?} does not broadcast to [{m}, {n}]")))
        }
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (a, b) = (ctx.input(0)?, ctx.input(1)?);
        expect_numeric("Gemm input", a.dtype)?;
        let (m, _, n) = self.dims(&a.shape, &b.shape)?;
        if let Some(c) = ctx.opt_input(2) {
            Self::check_c(&c.shape, m, n)?;
        }
        Ok(vec![TypeInfo::new(a.dtype, vec![m, n])])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let c = opt_input(inputs, 2);
        expect_numeric("Gemm input", a.dtype())?;
        let (m, k, n) = self.dims(a.shape(), b.shape())?;
        let (at, bt) = (self.trans_a, self.trans_b);
        let a_idx = |i: usize, p: usize| if at { p * m + i } else { i * k + p };
        let b_idx = |p: usize, j: usize| if bt { j * k + p } else { p * n + j };
        // C's value at (i, j) under unidirectional broadcasting.
        let c_idx = |cs: &[usize], i: usize, j: usize| match cs {
            [] => 0,
            [d] => {
                if *d == 1 {
                    0
                } else {
                    j
                }
            }
            [r, d] => (if *r == 1 { 0 } else { i }) * d + if *d == 1 { 0 } else { j },
            _ => 0,
        };
        if let Some(c) = c {
            Self::check_c(c.shape(), m, n)?;
        }
        let integral = |x: f64| x.fract() == 0.0 && x.abs() < 9.0e15;
        let out = match (vals(a), vals(b)) {
            (Vals::I(av), Vals::I(bv)) if integral(self.alpha) && integral(self.beta) => {
                let cv = c
                    .map(|c| int_values(c).ok_or_else(|| OpError::invalid("Gemm C must match A's type")))
                    .transpose()?;
                let (alpha, beta) = (self.alpha as i64, self.beta as i64);
                let mut out = Vec::with_capacity(m * n);
                for i in 0..m {
                    for j in 0..n {
                        let dot =
                            (0..k).fold(0i64, |acc, p| acc.wrapping_add(av[a_idx(i, p)].wrapping_mul(bv[b_idx(p, j)])));
                        let mut y = dot.wrapping_mul(alpha);
                        if let (Some(cv), Some(c)) = (&cv, c) {
                            y = y.wrapping_add(cv[c_idx(c.shape(), i, j)].wrapping_mul(beta));
                        }
                        out.push(y);
                    }
                }
                Vals::I(out)
            }
            _ => {
                let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
                let cv = c.map(|c| c.to_f64_vec());
                let work = if a.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
                let w = |v| round_to(work, v);
                let mut out = Vec::with_capacity(m * n);
                for i in 0..m {
                    for j in 0..n {
                        // Rounded after each step like the reference's numpy expression
                        // `dot(a, b) * alpha + c * beta`: the product in the input type,
                        // the rest in float32 (alpha and beta are float32), which matters
                        // for 16-bit floats.
                        let dot: f64 = (0..k).map(|p| av[a_idx(i, p)] * bv[b_idx(p, j)]).sum();
                        let mut y = w(round_to(a.dtype(), dot) * self.alpha);
                        if let (Some(cv), Some(c)) = (&cv, c) {
                            if self.beta != 0.0 {
                                y = w(y + w(cv[c_idx(c.shape(), i, j)] * self.beta));
                            }
                        }
                        out.push(y);
                    }
                }
                Vals::F(out)
            }
        };
        Ok(vec![from_vals(a.dtype(), &[m, n], out)])
    }
}

// ---- Det ----

fn infer_det(ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
    let x = ctx.input(0)?;
    expect_float("Det input", x.dtype)?;
    Ok(vec![TypeInfo::new(x.dtype, det_batch(&x.shape)?.to_vec())])
}

/// The batch shape of Det's input `[..., n, n]`.
fn det_batch(shape: &[usize]) -> Result<&[usize], OpError> {
    let r = shape.len();
    if r < 2 || shape[r - 1] != shape[r - 2] {
        return Err(OpError::invalid(format!("Det needs [..., n, n], got {shape:?}")));
    }
    Ok(&shape[..r - 2])
}

fn eval_det(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = input(inputs, 0)?;
    expect_float("Det input", x.dtype())?;
    let batch = det_batch(x.shape())?;
    let n = x.shape()[x.rank() - 1];
    let v = x.to_f64_vec();
    let out: Vec<f64> =
        if n == 0 { vec![1.0; num::numel(batch)?] } else { v.chunks(n * n).map(|m| det(m.to_vec(), n)).collect() };
    Ok(vec![from_f64(x.dtype(), batch, out)])
}

/// Determinant by LU decomposition with partial pivoting.
fn det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs())).unwrap_or(c);
        if a[p * n + c] == 0.0 {
            return 0.0;
        }
        if p != c {
            for j in 0..n {
                a.swap(p * n + j, c * n + j);
            }
            d = -d;
        }
        let piv = a[c * n + c];
        d *= piv;
        for i in c + 1..n {
            let f = a[i * n + c] / piv;
            for j in c..n {
                a[i * n + j] -= f * a[c * n + j];
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_of_permuted_matrix() {
        // [[0, 1], [2, 3]] needs a row swap: det = -2.
        assert_eq!(det(vec![0.0, 1.0, 2.0, 3.0], 2), -2.0);
    }

    #[test]
    fn matmul_1d_operands_drop_axes() {
        let s = matmul_shape(&[2, 3, 4], &[4]).unwrap();
        assert_eq!(s.out, vec![2, 3]);
        let s = matmul_shape(&[4], &[4]).unwrap();
        assert_eq!(s.out, Vec::<usize>::new());
    }
}
#[cfg(test)]
#[path = "linalg_fuzz.rs"]
mod fuzz;
