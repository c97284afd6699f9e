//! Lowering of the quant family: QuantizeLinear, DequantizeLinear,
//! DynamicQuantizeLinear and QLinearMatMul.
//!
//! Scales and zero points are read at run time through [`ParamAt`], which maps an
//! element's coordinates to its parameter (per tensor, per axis, or blocked along an
//! axis). Quantisation rounds half to even and saturates to the output type. The packed
//! types load and store like the others (`kir::packed`): 4/2-bit integers as `I32`,
//! 8/4-bit floats as `F32`, a store to a small float rounding to nearest even.

use super::conv::{clamp, saturation};
use super::linalg::{input, output, MatMulDims, ZeroPointArg};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{packed, DType};
use crate::kir::build::linear;
use crate::kir::{e, BinOp, Expr, Ty, UnOp};
use crate::ops::quant::{Dequantize, QuantOp, Quantize};

pub fn lower(op: &QuantOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    match op {
        QuantOp::QuantizeLinear(q) => lower_quantize(q, cx, ins, y),
        QuantOp::DequantizeLinear(d) => lower_dequantize(d, cx, ins, y),
        QuantOp::DynamicQuantizeLinear => lower_dynamic(cx, input(ins, 0)?, y, output(outs, 1)?, output(outs, 2)?),
        QuantOp::QLinearMatMul => lower_qlinear_matmul(cx, ins, y),
    }
}

/// Where an element of X finds its scale or zero point.
enum ParamAt {
    /// One value for the whole tensor.
    Tensor,
    /// `p[x's coordinate along axis]`.
    Axis(usize),
    /// `p[coordinates with axis's divided by block]`, `p` of shape `p_shape`.
    Blocked { axis: usize, block: usize, p_shape: Vec<usize> },
}

impl ParamAt {
    fn new(x: &[usize], p: &[usize], axis: i64, block: usize) -> Result<Self, OpError> {
        if p.iter().product::<usize>() == 1 {
            return Ok(ParamAt::Tensor);
        }
        let r = x.len() as i64;
        if !(-r..r).contains(&axis) {
            return Err(OpError::invalid(format!("axis {axis} is out of range for rank {r}")));
        }
        let axis = if axis < 0 { (axis + r) as usize } else { axis as usize };
        if block == 0 {
            if p != [x[axis]] {
                return Err(OpError::invalid(format!("per-axis parameter {p:?} does not fit axis {axis} of {x:?}")));
            }
            return Ok(ParamAt::Axis(axis));
        }
        let fits = p.len() == x.len()
            && (0..x.len()).all(|i| if i == axis { p[i] == x[i].div_ceil(block) } else { p[i] == x[i] });
        if !fits {
            return Err(OpError::invalid(format!("blocked parameter {p:?} does not fit {x:?} (block {block})")));
        }
        Ok(ParamAt::Blocked { axis, block, p_shape: p.to_vec() })
    }

    /// The parameter's index for the element at `ix`.
    fn index(&self, ix: &[Expr]) -> Expr {
        match self {
            ParamAt::Tensor => e::idx(0),
            ParamAt::Axis(a) => ix[*a].clone(),
            ParamAt::Blocked { axis, block, p_shape } => {
                let mut c = ix.to_vec();
                c[*axis] = e::div(c[*axis].clone(), e::idx(*block as i64));
                linear(p_shape, &c)
            }
        }
    }
}

/// The float type QuantizeLinear divides in: the reference's numpy type (int32 x in
/// float64; otherwise the wider of x and scale, or the `precision` attribute), with
/// the 16-bit floats computed in F32.
fn work_ty(d: DType) -> Ty {
    if d == DType::F64 {
        Ty::F64
    } else {
        Ty::F32
    }
}

/// Converts `v` of type `from` to `to` (a no-op when equal).
fn to(from: Ty, to: Ty, v: Expr) -> Expr {
    if from == to {
        v
    } else {
        e::cast(to, v)
    }
}

/// `y = saturate(round_half_even(x / scale) + zero_point)`.
fn lower_quantize(q: &Quantize, cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (x, scale) = (input(ins, 0)?, input(ins, 1)?);
    let zp = ins.get(2).and_then(Option::as_ref);
    if let Some(f) = packed::minifloat(y.ty.dtype) {
        return lower_quantize_float(q, f, cx, ins, y);
    }
    let (lo, hi) = saturation(y.ty.dtype)?;
    if y.ty.dtype == DType::I32 {
        return Err(OpError::unsupported("QuantizeLinear to int32"));
    }
    let (xt, st) = (x.kty()?, scale.kty()?);
    let work = quantize_work(q, x, scale);
    let s_at = ParamAt::new(x.shape(), scale.shape(), q.axis, q.block_size)?;
    let z_at = zp.map(|z| ParamAt::new(x.shape(), z.shape(), q.axis, q.block_size)).transpose()?;
    if let Some(z) = zp {
        z.kty()?;
    }
    let mut kb = cx.kernel("");
    kb.for_shape(x.shape(), |kb, ix| {
        let xv = to(xt, work, e::load(x.buf, linear(x.shape(), ix)));
        let sv = to(st, work, e::load(scale.buf, s_at.index(ix)));
        let mut v = e::un(UnOp::Round, e::div(xv, sv));
        if let (Some(z), Some(at)) = (zp, &z_at) {
            let zt = Ty::of_storage(z.ty.dtype).unwrap_or(Ty::I32);
            v = e::add(v, to(zt, work, e::load(z.buf, at.index(ix))));
        }
        kb.store(y.buf, linear(x.shape(), ix), e::cast(Ty::I32, clamp(v, work, lo, hi)));
    });
    cx.emit(kb.finish());
    Ok(())
}

/// The quotient's type (the reference's numpy type, 16-bit floats in F32).
fn quantize_work(q: &Quantize, x: &Operand, scale: &Operand) -> Ty {
    match q.precision {
        Some(p) => work_ty(p),
        None if x.ty.dtype == DType::I32 || x.ty.dtype == DType::F64 || scale.ty.dtype == DType::F64 => Ty::F64,
        None => Ty::F32,
    }
}

/// QuantizeLinear to an 8/4-bit float: `y = x / scale` (float4: `+ zero_point`, which
/// float8 ignores as the reference does), stored with round to nearest even; clamped to
/// the largest finite value first when `saturate` (float4 always saturates).
fn lower_quantize_float(
    q: &Quantize,
    f: packed::MiniFloat,
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    y: &Operand,
) -> Result<(), OpError> {
    let (x, scale) = (input(ins, 0)?, input(ins, 1)?);
    let zp = ins.get(2).and_then(Option::as_ref).filter(|_| y.ty.dtype == DType::F4E2M1);
    let (xt, st) = (x.kty()?, scale.kty()?);
    let work = quantize_work(q, x, scale);
    let s_at = ParamAt::new(x.shape(), scale.shape(), q.axis, q.block_size)?;
    let z_at = zp.map(|z| ParamAt::new(x.shape(), z.shape(), q.axis, q.block_size)).transpose()?;
    let zt = zp.map(|z| z.kty()).transpose()?;
    let saturate = q.saturate && y.ty.dtype != DType::F4E2M1;
    let max = f.max_finite();
    let mut kb = cx.kernel("");
    kb.for_shape(x.shape(), |kb, ix| {
        let xv = to(xt, work, e::load(x.buf, linear(x.shape(), ix)));
        let sv = to(st, work, e::load(scale.buf, s_at.index(ix)));
        let mut v = e::div(xv, sv);
        if let (Some(z), Some(at), Some(zt)) = (zp, &z_at, zt) {
            v = e::add(v, to(zt, work, e::load(z.buf, at.index(ix))));
        }
        if saturate {
            let q = e::var(kb.let_(work, v));
            let lit = |v: f64| if work == Ty::F64 { e::f64(v) } else { e::f32(v as f32) };
            let over = e::bin(BinOp::Gt, q.clone(), lit(max));
            let under = e::bin(BinOp::Lt, q.clone(), lit(-max));
            v = e::select(over, lit(max), e::select(under, lit(-max), q));
        }
        kb.store(y.buf, linear(x.shape(), ix), v);
    });
    cx.emit(kb.finish());
    Ok(())
}

/// `y = (x - zero_point) * scale`, in F64 when the scale is f64 or x is int32 (as the
/// reference's numpy does), else in F32.
fn lower_dequantize(d: &Dequantize, cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (x, scale) = (input(ins, 0)?, input(ins, 1)?);
    let zp = ins.get(2).and_then(Option::as_ref);
    let (xt, st, yt) = (x.kty()?, scale.kty()?, y.kty()?);
    // 8/4-bit float x loads as its exact F32 value; its zero point must be 0 and the
    // reference skips it.
    let small_float = packed::minifloat(x.ty.dtype).is_some();
    let zp = zp.filter(|_| !small_float);
    if xt != Ty::I32 && !small_float {
        return Err(OpError::unsupported(format!("DequantizeLinear of {}", x.ty.dtype)));
    }
    let work = if scale.ty.dtype == DType::F64 || x.ty.dtype == DType::I32 { Ty::F64 } else { Ty::F32 };
    let s_at = ParamAt::new(x.shape(), scale.shape(), d.axis, d.block_size)?;
    let z_at = zp.map(|z| ParamAt::new(x.shape(), z.shape(), d.axis, d.block_size)).transpose()?;
    if let Some(z) = zp {
        if z.kty()? != Ty::I32 {
            return Err(OpError::unsupported(format!("DequantizeLinear zero point of {}", z.ty.dtype)));
        }
    }
    let mut kb = cx.kernel("");
    kb.for_shape(x.shape(), |kb, ix| {
        let mut dx = e::load(x.buf, linear(x.shape(), ix));
        if let (Some(z), Some(at)) = (zp, &z_at) {
            dx = e::sub(dx, e::load(z.buf, at.index(ix)));
        }
        let v = e::mul(to(xt, work, dx), to(st, work, e::load(scale.buf, s_at.index(ix))));
        kb.store(y.buf, linear(x.shape(), ix), to(work, yt, v));
    });
    cx.emit(kb.finish());
    Ok(())
}

/// DynamicQuantizeLinear, all in F32 like the reference: the range of x widened to
/// include 0 (NaNs ignored), `scale = range / 255`, `zp = saturate(round(-min /
/// scale))`, then `y = saturate(round(x / scale) + zp)` to uint8.
fn lower_dynamic(cx: &mut LowerCx, x: &Operand, y: &Operand, scale: &Operand, zp: &Operand) -> Result<(), OpError> {
    if x.ty.dtype != DType::F32 {
        return Err(OpError::unsupported(format!("DynamicQuantizeLinear of {}", x.ty.dtype)));
    }
    let mut kb = cx.kernel("");
    let (mx, mn) = (kb.let_(Ty::F32, e::f32(0.0)), kb.let_(Ty::F32, e::f32(0.0)));
    kb.for_(x.len(), |kb, i| {
        let v = kb.let_(Ty::F32, e::load(x.buf, i));
        kb.set(mx, e::select(e::bin(BinOp::Gt, e::var(v), e::var(mx)), e::var(v), e::var(mx)));
        kb.set(mn, e::select(e::bin(BinOp::Lt, e::var(v), e::var(mn)), e::var(v), e::var(mn)));
    });
    let range = e::select(e::bin(BinOp::Eq, e::var(mx), e::var(mn)), e::f32(1.0), e::sub(e::var(mx), e::var(mn)));
    let s = kb.let_(Ty::F32, e::div(range, e::f32(255.0)));
    let z = kb.let_(
        Ty::F32,
        e::un(UnOp::Round, clamp(e::sub(e::f32(0.0), e::div(e::var(mn), e::var(s))), Ty::F32, 0.0, 255.0)),
    );
    kb.store(scale.buf, e::idx(0), e::var(s));
    kb.store(zp.buf, e::idx(0), e::cast(Ty::I32, e::var(z)));
    kb.for_(x.len(), |kb, i| {
        let q = e::add(e::un(UnOp::Round, e::div(e::load(x.buf, i.clone()), e::var(s))), e::var(z));
        kb.store(y.buf, i, e::cast(Ty::I32, clamp(q, Ty::F32, 0.0, 255.0)));
    });
    cx.emit(kb.finish());
    Ok(())
}

/// QLinearMatMul: the exact int32 product of `(a - a_zp)` and `(b - b_zp)`, requantised
/// with `factor = a_scale * b_scale / y_scale` (computed in the scales' type, F32) as
/// `saturate(round_half_even(acc * factor + y_zp))` in F64, as the reference does.
fn lower_qlinear_matmul(cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (a, a_s, b, b_s, y_s) = (input(ins, 0)?, input(ins, 1)?, input(ins, 3)?, input(ins, 4)?, input(ins, 6)?);
    let y_zp = ins.get(7).and_then(Option::as_ref);
    let (lo, hi) = saturation(y.ty.dtype)?;
    for p in [
        Some(a_s),
        Some(b_s),
        Some(y_s),
        ins.get(2).and_then(Option::as_ref),
        ins.get(5).and_then(Option::as_ref),
        y_zp,
    ]
    .into_iter()
    .flatten()
    {
        if p.len() != 1 {
            return Err(OpError::unsupported("QLinearMatMul with per-axis parameters"));
        }
    }
    let st = a_s.kty()?;
    if !st.is_float() || b_s.kty()? != st || y_s.kty()? != st {
        return Err(OpError::unsupported("QLinearMatMul scales of mixed types"));
    }
    let s = MatMulDims::new(a.shape(), b.shape())?;
    let (az, bz) =
        (ZeroPointArg::new(ins.get(2), s.m, "a_zero_point")?, ZeroPointArg::new(ins.get(5), s.n, "b_zero_point")?);
    let scalar = |o: &Operand| e::load(o.buf, e::idx(0));
    let mut kb = cx.kernel("");
    let factor = kb.let_(st, e::div(e::mul(scalar(a_s), scalar(b_s)), scalar(y_s)));
    let zp = match y_zp {
        Some(z) => e::cast(Ty::F64, scalar(z)),
        None => e::f64(0.0),
    };
    let finish = |acc: Expr| {
        let v = e::add(e::mul(e::cast(Ty::F64, acc), to(st, Ty::F64, e::var(factor))), zp.clone());
        e::cast(Ty::I32, clamp(e::un(UnOp::Round, v), Ty::F64, lo, hi))
    };
    s.emit(&mut kb, Ty::I32, y, Some(&finish), |ix, ai, bi| {
        (e::sub(e::load(a.buf, ai), az.at(ix.i.clone())), e::sub(e::load(b.buf, bi), bz.at(ix.j.clone())))
    });
    cx.emit(kb.finish());
    Ok(())
}
