//! Lowering of `Resize` / `Upsample`: one kernel per resized axis, like the reference
//! evaluator's separable scheme.
//!
//! The taps of every output position (input indices and weights) depend only on shapes,
//! attributes and the scales/sizes/roi inputs, so they are computed at compile time by
//! the op's own code (`Resize::passes`, shared with `eval`) and baked into constant
//! tables: `idx[o * n + k]` (i32) and `w[o * n + k]`. A pass then is
//!
//! ```text
//! for b in outer, o in out, i in inner:
//!     y[b, o, i] = sum_k w[o, k] * x[b, idx[o, k], i]     (or the extrapolation value)
//! ```
//!
//! Passes whose every position reads exactly one tap with weight 1 (nearest) are plain
//! gathers in the data's own type (any dtype, bool included). Weighted passes compute
//! in f32 for float16/bfloat16/float32 data and in f64 for float64 and integer data;
//! integers round half to even and saturate at the end, as the reference does.
//! Intermediate results between passes live in scratch buffers of the compute type.
//!
//! A run-time `roi` only matters for `tf_crop_and_resize` (it moves every tap): that
//! mode needs a constant roi; in other modes a run-time roi is ignored, as it changes
//! nothing but whether an exact scale-1 axis is skipped (same values either way).

use std::sync::Arc;

use super::conv::{clamp, saturation};
use super::linalg::{flit, input, output, zero};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, BufKind, Expr, Ty, UnOp, Var};
use crate::ops::image::{AxisTaps, CropAxis, Interp, NearestMode, Resize};

pub(super) fn lower(op: &Resize, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let y = output(outs, 0)?;
    // The shape-deciding inputs are constants (or the output type could not be static).
    let roi_slot = op.roi_slot();
    let mut konsts: Vec<Option<&Tensor>> = Vec::with_capacity(ins.len());
    let mut runtime_roi = None;
    for (i, o) in ins.iter().enumerate() {
        konsts.push(match o {
            None => None,
            // The data: `passes` reads only its dtype and shape.
            Some(_) if i == 0 => None,
            Some(o) => match (&o.konst, Some(i) == roi_slot) {
                (Some(t), _) => Some(t.as_ref()),
                (None, _) if o.is_empty() => None,
                (None, true) => {
                    runtime_roi = Some(o);
                    None
                }
                (None, false) => return Err(OpError::unsupported(format!("Resize with run-time input {i}"))),
            },
        });
    }
    if let Some(roi) = runtime_roi.filter(|_| op.uses_roi()) {
        let axes = op.crop_axes(x.ty.dtype, x.shape(), &konsts, roi.len())?;
        return lower_crop(op, cx, x, roi, y, &axes);
    }
    let passes = op.passes(x.ty.dtype, x.shape(), &konsts)?;
    if passes.is_empty() {
        cx.alias(0, 0);
        return Ok(());
    }
    let mut cur_shape = x.shape().to_vec();
    let mut src = (x.buf, x.ty.dtype);
    let last = passes.len() - 1;
    for (n, p) in passes.iter().enumerate() {
        let gather = is_gather(p);
        let ct = compute_type(x.ty.dtype, gather)?;
        cur_shape[p.axis] = p.out;
        let dst = if n == last {
            (y.buf, y.ty.dtype)
        } else {
            let dt = if gather { x.ty.dtype } else { ct };
            (cx.scratch(&format!("pass{n}"), dt, cur_shape.clone()), dt)
        };
        emit_pass(op, cx, p, &cur_shape, src, dst, gather, ct, n)?;
        src = dst;
    }
    Ok(())
}

/// Every position reads one input element unchanged (or extrapolates).
fn is_gather(p: &AxisTaps) -> bool {
    p.taps.iter().all(|t| match t {
        None => true,
        Some(taps) => {
            let mut live = taps.iter().filter(|(_, w)| *w != 0.0);
            matches!((live.next(), live.next()), (Some((_, w)), None) if *w == 1.0)
        }
    })
}

/// The storage dtype weighted passes compute in (gathers keep the data's own type).
fn compute_type(dtype: DType, gather: bool) -> Result<DType, OpError> {
    Ok(match dtype {
        _ if gather => dtype,
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        DType::F64 => DType::F64,
        d if d.is_int() => DType::F64,
        d => return Err(OpError::unsupported(format!("Resize interpolating {d} data"))),
    })
}

/// `v` (f64) as a literal of `ty`; integers round half to even, as the reference's cast.
fn lit_of(ty: Ty, v: f64) -> Expr {
    match ty {
        Ty::F32 | Ty::F64 => flit(ty, v),
        Ty::I32 => e::i32(v.round_ties_even() as i32),
        Ty::I64 | Ty::Index => e::i64(v.round_ties_even() as i64),
        Ty::Bool => e::bool(v != 0.0),
    }
}

/// `v` (of type `from`) as `to`.
fn cast_to(to: Ty, from: Ty, v: Expr) -> Expr {
    if to == from { v } else { e::cast(to, v) }
}

/// Converts a pass's value (of compute type `cty`) for a `dst_dt` buffer: integer
/// results round half to even and saturate, as the reference's cast (f64 holds them
/// exactly); gathers store the data's own values.
fn finisher(dst_dt: DType, dst_ty: Ty, cty: Ty, gather: bool) -> Result<impl Fn(Expr) -> Expr, OpError> {
    let int_range = match dst_dt {
        _ if gather || dst_ty.is_float() => None,
        DType::U32 => Some((0.0, u32::MAX as f64)),
        d => Some(saturation(d).map_err(|_| OpError::unsupported(format!("Resize interpolating {d} data")))?),
    };
    Ok(move |v: Expr| match int_range {
        Some((lo, hi)) => e::cast(dst_ty, clamp(e::un(UnOp::Round, v), cty, lo, hi)),
        None if gather => v,
        None => cast_to(dst_ty, cty, v),
    })
}

fn table(cx: &mut LowerCx, what: &str, t: Tensor) -> BufId {
    let shape = t.shape().to_vec();
    let name = format!("{}.{what}", cx.name);
    cx.prog.add_buffer(name, t.dtype(), shape, BufKind::Weight(Arc::new(t)))
}

#[allow(clippy::too_many_arguments)]
fn emit_pass(
    op: &Resize,
    cx: &mut LowerCx,
    p: &AxisTaps,
    out_shape: &[usize],
    (src, src_dt): (BufId, DType),
    (dst, dst_dt): (BufId, DType),
    gather: bool,
    ct: DType,
    n: usize,
) -> Result<(), OpError> {
    let outer: usize = out_shape[..p.axis].iter().product();
    let inner: usize = out_shape[p.axis + 1..].iter().product();
    let ntaps = if gather { 1 } else { p.taps.iter().flatten().map(Vec::len).max().unwrap_or(1) };
    // Tables: tap indices and weights, zero-padded to `ntaps`; outside positions flagged.
    let mut idx = vec![0i32; p.out * ntaps];
    let mut w = vec![0.0f64; p.out * ntaps];
    let mut outside = vec![false; p.out];
    for (o, taps) in p.taps.iter().enumerate() {
        match taps {
            None => outside[o] = true,
            Some(taps) if gather => {
                let (i, _) = taps.iter().find(|(_, w)| *w != 0.0).expect("a gather tap");
                idx[o] = *i as i32;
            }
            Some(taps) => {
                for (k, &(i, wt)) in taps.iter().enumerate() {
                    idx[o * ntaps + k] = i as i32;
                    w[o * ntaps + k] = wt;
                }
            }
        }
    }
    if p.in_len > i32::MAX as usize {
        return Err(OpError::unsupported("Resize of an axis longer than 2^31"));
    }
    let idx_buf = table(cx, &format!("idx{n}"), Tensor::from_vec(&[p.out, ntaps], idx));
    let w_buf = (!gather).then(|| {
        let t = Tensor::from_vec(&[p.out, ntaps], w.clone()).cast(ct);
        table(cx, &format!("w{n}"), t)
    });
    let any_outside = outside.iter().any(|&b| b);
    let flag_buf = any_outside.then(|| table(cx, &format!("outside{n}"), Tensor::from_vec(&[p.out], outside.clone())));

    let src_ty = Ty::of_storage(src_dt).ok_or_else(|| OpError::unsupported(format!("Resize of {src_dt} data")))?;
    let dst_ty = Ty::of_storage(dst_dt).ok_or_else(|| OpError::unsupported(format!("Resize of {dst_dt} data")))?;
    let cty = Ty::of_storage(ct).expect("a compute type");
    let finish = finisher(dst_dt, dst_ty, cty, gather)?;
    let extrap = lit_of(if gather { src_ty } else { cty }, op.extrapolation());
    let mut k = cx.kernel(&format!("axis{}", p.axis));
    k.for_(outer, |k, b| {
        k.for_(p.out, |k, o| {
            let base = imul(b.clone(), (p.in_len * inner) as i64);
            let dst_base = imul(iadd(imul(b.clone(), p.out as i64), o.clone()), inner as i64);
            k.for_(inner, |k, i| {
                let at = |k: &mut KernelBuilder, t: Expr| {
                    let tap = k.let_(Ty::Index, e::cast(Ty::Index, e::load(idx_buf, t)));
                    iadd(iadd(base.clone(), imul(e::var(tap), inner as i64)), i.clone())
                };
                let value = if gather {
                    let a = at(k, o.clone());
                    e::load(src, a)
                } else {
                    let acc = k.let_(cty, zero(cty));
                    let wb = w_buf.expect("weights");
                    k.for_(ntaps, |k, t| {
                        let ti = iadd(imul(o.clone(), ntaps as i64), t);
                        let a = at(k, ti.clone());
                        let v = e::load(src, a);
                        let v = if src_ty == cty { v } else { e::cast(cty, v) };
                        k.set(acc, e::add(e::var(acc), e::mul(e::load(wb, ti), v)));
                    });
                    e::var(acc)
                };
                // Both sides are safe: outside positions read tap 0 of index 0.
                let value = match flag_buf {
                    Some(f) => e::select(e::load(f, o.clone()), extrap.clone(), value),
                    None => value,
                };
                let dst_at = iadd(dst_base.clone(), i);
                k.store(dst, dst_at, finish(value));
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}

/// `tf_crop_and_resize` with a run-time roi: one kernel per planned axis, each output
/// position's source coordinate computed from the roi in f64 as the reference does,
/// `x = o * (end - start) * (in - 1) / (out_w - 1) + start * (in - 1)` (the crop's
/// centre when `out_w = scale * in` is 1), and outside `[0, in - 1]` the extrapolation
/// value. Linear reads `floor(x)` and `floor(x) + 1` weighted by the fraction, nearest
/// one of them by its `nearest_mode`; at an integer `x` both read `x` alone, as the
/// reference's taps do. Indices are cast only from clamped, in-range floats (a NaN
/// coordinate counts as outside).
fn lower_crop(op: &Resize, cx: &mut LowerCx, x: &Operand, roi: &Operand, y: &Operand, axes: &[CropAxis]) -> Result<(), OpError> {
    let Some(last) = axes.len().checked_sub(1) else {
        cx.alias(0, 0);
        return Ok(());
    };
    let nearest = match op.interp() {
        Interp::Nearest(m) => Some(m),
        _ => None,
    };
    let ct = compute_type(x.ty.dtype, nearest.is_some())?;
    let roi_ty = roi.kty()?;
    if !roi_ty.is_float() {
        return Err(OpError::invalid("Resize roi must be a float tensor"));
    }
    let mut cur_shape = x.shape().to_vec();
    let mut src = (x.buf, x.ty.dtype);
    for (n, a) in axes.iter().enumerate() {
        cur_shape[a.axis] = a.out;
        let dst = if n == last { (y.buf, y.ty.dtype) } else { (cx.scratch(&format!("pass{n}"), ct, cur_shape.clone()), ct) };
        let outer: usize = cur_shape[..a.axis].iter().product();
        let inner: usize = cur_shape[a.axis + 1..].iter().product();
        let src_ty = Ty::of_storage(src.1).ok_or_else(|| OpError::unsupported(format!("Resize of {} data", src.1)))?;
        let dst_ty = Ty::of_storage(dst.1).ok_or_else(|| OpError::unsupported(format!("Resize of {} data", dst.1)))?;
        let cty = Ty::of_storage(ct).expect("a compute type");
        let finish = finisher(dst.1, dst_ty, cty, nearest.is_some())?;
        let in_w = a.in_len as f64;
        let out_w = a.scale * in_w;
        let extrap = lit_of(if nearest.is_some() { src_ty } else { cty }, op.extrapolation());
        let mut k = cx.kernel(&format!("axis{}", a.axis));
        let load_roi = |i: usize| {
            let v = e::load(roi.buf, e::idx(i as i64));
            if roi_ty == Ty::F64 { v } else { e::cast(Ty::F64, v) }
        };
        let start = k.let_(Ty::F64, load_roi(a.roi_start));
        let span = k.let_(Ty::F64, e::sub(load_roi(a.roi_end), e::var(start)));
        let f = e::f64;
        k.for_(outer, |k, b| {
            k.for_(a.out, |k, o| {
                let pos = if out_w == 1.0 {
                    e::div(e::mul(e::var(span), f(in_w - 1.0)), f(2.0))
                } else {
                    e::div(e::mul(e::mul(e::cast(Ty::F64, o.clone()), e::var(span)), f(in_w - 1.0)), f(out_w - 1.0))
                };
                let xs = k.let_(Ty::F64, e::add(pos, e::mul(e::var(start), f(in_w - 1.0))));
                let ok = e::bin(BinOp::And, e::bin(BinOp::Ge, e::var(xs), f(0.0)), e::bin(BinOp::Le, e::var(xs), f(in_w - 1.0)));
                let ok = k.let_(Ty::Bool, ok);
                let safe = k.let_(Ty::F64, e::select(e::var(ok), e::var(xs), f(0.0)));
                let fl = k.let_(Ty::F64, e::un(UnOp::Floor, e::var(safe)));
                let r = k.let_(Ty::F64, e::sub(e::var(safe), e::var(fl)));
                let whole = k.let_(Ty::Bool, e::bin(BinOp::Eq, e::var(r), f(0.0)));
                let top = f(in_w - 1.0);
                let index = |k: &mut KernelBuilder, v: Expr| {
                    k.let_(Ty::Index, e::cast(Ty::Index, e::bin(BinOp::Min, v, top.clone())))
                };
                // Taps: (index var, weight) — one for nearest, two for linear.
                let taps: Vec<(Var, Option<Expr>)> = match nearest {
                    Some(m) => {
                        let up = match m {
                            NearestMode::RoundPreferFloor => e::bin(BinOp::Gt, e::var(r), f(0.5)),
                            NearestMode::RoundPreferCeil => e::bin(BinOp::Ge, e::var(r), f(0.5)),
                            NearestMode::Floor => e::bool(false),
                            NearestMode::Ceil => e::bool(true),
                        };
                        let pick = e::select(e::var(whole), e::var(fl), e::select(up, e::add(e::var(fl), f(1.0)), e::var(fl)));
                        vec![(index(k, pick), None)]
                    }
                    None => {
                        let i0 = index(k, e::var(fl));
                        let i1 = index(k, e::add(e::var(fl), f(1.0)));
                        let w1 = e::select(e::var(whole), f(0.0), e::var(r));
                        let w1 = k.let_(Ty::F64, w1);
                        let w0 = e::select(e::var(whole), f(1.0), e::sub(f(1.0), e::var(r)));
                        vec![(i0, Some(w0)), (i1, Some(e::var(w1)))]
                    }
                };
                let taps: Vec<(Var, Option<Var>)> = taps.into_iter().map(|(i, w)| (i, w.map(|w| k.let_(cty, cast_to(cty, Ty::F64, w))))).collect();
                let base = imul(b.clone(), (a.in_len * inner) as i64);
                let dst_base = imul(iadd(imul(b.clone(), a.out as i64), o.clone()), inner as i64);
                k.for_(inner, |k, i| {
                    let read = |t: Var| e::load(src.0, iadd(iadd(base.clone(), imul(e::var(t), inner as i64)), i.clone()));
                    let value = taps
                        .iter()
                        .map(|&(t, w)| match w {
                            None => read(t),
                            Some(w) => e::mul(e::var(w), cast_to(cty, src_ty, read(t))),
                        })
                        .reduce(e::add)
                        .expect("one or two taps");
                    let value = e::select(e::var(ok), value, extrap.clone());
                    k.store(dst.0, iadd(dst_base.clone(), i), finish(value));
                });
            });
        });
        cx.emit(k.finish());
        src = dst;
    }
    Ok(())
}
