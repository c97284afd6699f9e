//! Lowering of the shape family to KIR.
//!
//! Ops that keep the elements in row-major order (Identity, Reshape, Flatten, Squeeze,
//! Unsqueeze) are aliases and cost no kernel. Every other op moves elements with one
//! loop nest per contiguous piece of work whose index arithmetic is affine in the loop
//! variables: the iteration space is chosen so that it is (Tile iterates over
//! `(repeat, index)` pairs per axis, DepthToSpace over `(h, i, w, j)`), and only Pad's
//! reflect/edge/wrap modes need a per-axis clamp or modulo. Shapes, axes, pads and
//! repeats are compile-time constants by the time a node is lowered (static shapes);
//! fill values and Trilu's `k` may also be runtime inputs.

#[path = "shape_pad.rs"]
mod pad;
#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
#[path = "shape_util.rs"]
pub(super) mod util;

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::KernelBuilder;
use crate::kir::{e, BinOp, Expr, Ty};
use crate::ops::shape::layout::IntsArg;
use crate::ops::shape::ShapeOp;
use crate::ops::util::{norm_axes, norm_axis};
use util::{coeffs, copy_nest, fill, input, ints_arg, lit, output, tensor_lit, Access};

pub fn lower(op: &ShapeOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    util::check_storage(ins, outs)?;
    let x = input(ins, 0)?;
    match op {
        ShapeOp::Shape { start, end } => shape_of(cx, x, output(outs, 0)?, *start, *end),
        ShapeOp::Size => {
            let out = output(outs, 0)?;
            let mut k = cx.kernel("");
            k.store(out.buf, e::idx(0), e::i64(x.len() as i64));
            cx.emit(k.finish());
            Ok(())
        }
        ShapeOp::Identity
        | ShapeOp::Reshape { .. }
        | ShapeOp::Flatten { .. }
        | ShapeOp::Squeeze { .. }
        | ShapeOp::Unsqueeze { .. } => {
            let out = output(outs, 0)?;
            if out.len() != x.len() || out.ty.dtype != x.ty.dtype {
                return Err(OpError::invalid(format!("{} cannot be a view of {}", out.ty, x.ty)));
            }
            cx.alias(0, 0);
            Ok(())
        }
        ShapeOp::Transpose { perm } => transpose(cx, x, output(outs, 0)?, perm.as_deref()),
        ShapeOp::Concat { axis } => concat(cx, ins, output(outs, 0)?, *axis),
        ShapeOp::Split { axis, split: sizes, num_outputs, n_outputs } => {
            let sizes = split_sizes(ins, x, *axis, sizes, num_outputs.unwrap_or(*n_outputs))?;
            split(cx, x, outs, *axis, &sizes)
        }
        ShapeOp::Expand => expand(cx, x, output(outs, 0)?),
        ShapeOp::Tile => tile(cx, x, output(outs, 0)?),
        ShapeOp::Pad { mode, pads, value, axes } => pad::pad(cx, ins, output(outs, 0)?, *mode, pads, value, axes),
        ShapeOp::CenterCropPad { axes } => pad::center_crop_pad(cx, ins, output(outs, 0)?, axes.as_deref()),
        ShapeOp::ConstantOfShape { value } => {
            let out = output(outs, 0)?;
            let v = tensor_lit(value, out.kty()?)?;
            let mut k = cx.kernel("");
            fill(&mut k, out.buf, out.len(), v);
            cx.emit(k.finish());
            Ok(())
        }
        ShapeOp::EyeLike { k, .. } => eye_like(cx, output(outs, 0)?, *k),
        ShapeOp::Range => range(cx, ins, output(outs, 0)?),
        ShapeOp::Trilu { upper } => trilu(cx, ins, output(outs, 0)?, *upper),
        ShapeOp::DepthToSpace { block, crd } => depth_to_space(cx, x, output(outs, 0)?, *block, *crd),
        ShapeOp::SpaceToDepth { block } => space_to_depth(cx, x, output(outs, 0)?, *block),
        ShapeOp::BitCast { .. } => bitcast(cx, x, output(outs, 0)?),
    }
}

/// Shape (normally folded: shapes are static) writes the input's dims `[start, end)`.
fn shape_of(cx: &mut LowerCx, x: &Operand, out: &Operand, start: i64, end: Option<i64>) -> Result<(), OpError> {
    let r = x.shape().len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(start);
    let dims = &x.shape()[s..end.map_or(x.shape().len(), clamp).max(s)];
    if dims.len() != out.len() {
        return Err(OpError::invalid("Shape output does not match the input rank"));
    }
    let mut k = cx.kernel("");
    for (i, &d) in dims.iter().enumerate() {
        k.store(out.buf, e::idx(i as i64), e::i64(d as i64));
    }
    cx.emit(k.finish());
    Ok(())
}

/// Output coordinate `d` walks input axis `perm[d]`: the load's coefficients are the
/// input strides permuted; the store walks the output contiguously.
fn transpose(cx: &mut LowerCx, x: &Operand, out: &Operand, perm: Option<&[i64]>) -> Result<(), OpError> {
    let rank = x.shape().len();
    let perm = match perm {
        Some(p) if p.len() == rank => norm_axes(p, rank)?,
        Some(p) => return Err(OpError::invalid(format!("Transpose perm {p:?} does not match rank {rank}"))),
        None => (0..rank).rev().collect(),
    };
    let st = coeffs(x.shape());
    let src: Vec<i64> = perm.iter().map(|&a| st[a]).collect();
    let mut k = cx.kernel("");
    copy_nest(
        &mut k,
        out.shape(),
        Access { buf: x.buf, base: 0, coeffs: src.to_vec() },
        Access::dense(out.buf, out.shape()),
    );
    cx.emit(k.finish());
    Ok(())
}

/// Each input is copied into its slab of the output, one loop nest per input.
fn concat(cx: &mut LowerCx, ins: &[Option<Operand>], out: &Operand, axis: i64) -> Result<(), OpError> {
    let a = norm_axis(axis, out.shape().len())?;
    let ost = coeffs(out.shape());
    let mut k = cx.kernel("");
    let mut along = 0;
    for x in ins.iter().flatten() {
        let st = coeffs(x.shape());
        let dst = Access { buf: out.buf, base: along * ost[a], coeffs: ost.clone() };
        copy_nest(&mut k, x.shape(), Access { buf: x.buf, base: 0, coeffs: st.clone() }, dst);
        along += x.shape().get(a).copied().unwrap_or(0) as i64;
    }
    if along != out.shape()[a] as i64 {
        return Err(OpError::invalid("Concat inputs do not fill the output"));
    }
    cx.emit(k.finish());
    Ok(())
}

/// Split's chunk sizes: explicit, or `n` chunks of `ceil(dim / n)` with a smaller last
/// one. Needed (rather than read off the outputs) because an unused output may be absent.
fn split_sizes(
    ins: &[Option<Operand>],
    x: &Operand,
    axis: i64,
    split: &IntsArg,
    n: usize,
) -> Result<Vec<usize>, OpError> {
    let dim = x.shape()[norm_axis(axis, x.shape().len())?];
    if let Some(sizes) = ints_arg(ins, split, "split")? {
        return sizes
            .iter()
            .map(|&s| usize::try_from(s).map_err(|_| OpError::invalid("negative split size")))
            .collect();
    }
    if n == 0 {
        return Err(OpError::invalid("Split into 0 parts"));
    }
    let chunk = dim.div_ceil(n);
    Ok((0..n).map(|i| chunk.min(dim.saturating_sub(i * chunk))).collect())
}

/// Each output is the input's slab starting where the previous one ended.
fn split(cx: &mut LowerCx, x: &Operand, outs: &[Option<Operand>], axis: i64, sizes: &[usize]) -> Result<(), OpError> {
    let a = norm_axis(axis, x.shape().len())?;
    if sizes.iter().sum::<usize>() != x.shape()[a] || sizes.len() < outs.len() {
        return Err(OpError::invalid(format!("Split sizes {sizes:?} do not cover {:?} on axis {a}", x.shape())));
    }
    let st = coeffs(x.shape());
    let mut k = cx.kernel("");
    let mut start = 0;
    for (out, &size) in outs.iter().zip(sizes) {
        if let Some(out) = out {
            if out.shape()[a] != size {
                return Err(OpError::invalid("Split output does not match its size"));
            }
            let src = Access { buf: x.buf, base: start * st[a], coeffs: st.clone() };
            copy_nest(&mut k, out.shape(), src, Access::dense(out.buf, out.shape()));
        }
        start += size as i64;
    }
    cx.emit(k.finish());
    Ok(())
}

/// Broadcast: input axes of size 1 (and missing leading axes) get coefficient 0.
fn expand(cx: &mut LowerCx, x: &Operand, out: &Operand) -> Result<(), OpError> {
    let (xs, os) = (x.shape(), out.shape());
    let lead = os.len().checked_sub(xs.len()).ok_or_else(|| OpError::invalid("Expand lowers the rank"))?;
    let st = coeffs(xs);
    let mut src = vec![0; lead];
    src.extend(xs.iter().zip(&st).map(|(&d, &s)| if d == 1 { 0 } else { s }));
    let mut k = cx.kernel("");
    copy_nest(&mut k, os, Access { buf: x.buf, base: 0, coeffs: src.to_vec() }, Access::dense(out.buf, out.shape()));
    cx.emit(k.finish());
    Ok(())
}

/// Iterates over `(repeat, index)` per axis, so both sides are affine: the output
/// coordinate is `repeat * n + index`, the input coordinate `index`.
fn tile(cx: &mut LowerCx, x: &Operand, out: &Operand) -> Result<(), OpError> {
    if out.is_empty() {
        return Ok(());
    }
    let (st, ost) = (coeffs(x.shape()), coeffs(out.shape()));
    let (mut space, mut src, mut dst) = (Vec::new(), Vec::new(), Vec::new());
    for (d, (&n, &o)) in x.shape().iter().zip(out.shape()).enumerate() {
        if n == 0 || o % n != 0 {
            return Err(OpError::invalid(format!("Tile: output {:?} is no multiple of {:?}", out.shape(), x.shape())));
        }
        space.extend([o / n, n]);
        src.extend([0, st[d]]);
        dst.extend([n as i64 * ost[d], ost[d]]);
    }
    let mut k = cx.kernel("");
    copy_nest(
        &mut k,
        &space,
        Access { buf: x.buf, base: 0, coeffs: src.to_vec() },
        Access { buf: out.buf, base: 0, coeffs: dst.to_vec() },
    );
    cx.emit(k.finish());
    Ok(())
}

/// Zeros, then ones along the diagonal `j = i + k` (a single affine loop).
fn eye_like(cx: &mut LowerCx, out: &Operand, diag: i64) -> Result<(), OpError> {
    let ty = out.kty()?;
    let &[r, c] = out.shape() else { return Err(OpError::invalid("EyeLike output must be 2-D")) };
    let (r, c) = (r as i64, c as i64);
    let first = 0.max(diag.saturating_neg());
    let end = r.min(c.saturating_sub(diag));
    let mut k = cx.kernel("");
    fill(&mut k, out.buf, out.len(), lit(ty, 0.0));
    if end > first {
        // Element (i, i + diag) for i = first + t.
        k.for_((end - first) as usize, |k, t| {
            let at = util::affine(first * c + first + diag, &[t], &[c + 1]);
            k.store(out.buf, at, lit(ty, 1.0));
        });
    }
    cx.emit(k.finish());
    Ok(())
}

/// `start + i * delta`, with start and delta read from their buffers: integers wrap
/// at their width, floats use one fused multiply-add in the element's type.
fn range(cx: &mut LowerCx, ins: &[Option<Operand>], out: &Operand) -> Result<(), OpError> {
    let (start, delta) = (input(ins, 0)?, input(ins, 2)?);
    let ty = out.kty()?;
    if start.is_empty() || delta.is_empty() || !(ty.is_int() || ty.is_float()) {
        return Err(OpError::invalid("Range needs scalar numeric start and delta"));
    }
    let mut k = cx.kernel("");
    let s = k.let_(ty, e::load(start.buf, e::idx(0)));
    let d = k.let_(ty, e::load(delta.buf, e::idx(0)));
    k.for_(out.len(), |k, i| {
        let v = if ty.is_float() {
            e::fma(e::cast(ty, i.clone()), e::var(d), e::var(s))
        } else {
            e::add(e::var(s), e::mul(e::cast(ty, i.clone()), e::var(d)))
        };
        k.store(out.buf, i, v);
    });
    cx.emit(k.finish());
    Ok(())
}

/// Keeps elements on the chosen side of diagonal `k` of the last two axes, zeros
/// elsewhere; `k` may be a runtime input.
fn trilu(cx: &mut LowerCx, ins: &[Option<Operand>], out: &Operand, upper: bool) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let ty = out.kty()?;
    let rank = x.shape().len();
    if rank < 2 || out.shape() != x.shape() {
        return Err(OpError::invalid("Trilu needs rank 2 or more"));
    }
    let mut kb = cx.kernel("");
    let diag = trilu_k(&mut kb, util::opt_input(ins, 1))?;
    kb.for_shape(x.shape(), |kb, ix| {
        let off = e::sub(ix[rank - 1].clone(), ix[rank - 2].clone());
        let keep = e::bin(if upper { BinOp::Ge } else { BinOp::Le }, off, diag);
        let at = crate::kir::build::linear(x.shape(), ix);
        kb.store(out.buf, at.clone(), e::select(keep, e::load(x.buf, at), lit(ty, 0.0)));
    });
    cx.emit(kb.finish());
    Ok(())
}

/// Trilu's `k` as an Index expression: 0 when omitted, a literal when constant, else
/// loaded once.
fn trilu_k(kb: &mut KernelBuilder, k: Option<&Operand>) -> Result<Expr, OpError> {
    let Some(k) = k else { return Ok(e::idx(0)) };
    if k.len() != 1 {
        return Err(OpError::invalid("Trilu k must be a scalar"));
    }
    Ok(match &k.konst {
        Some(t) => e::idx(t.to_i64_vec().and_then(|v| v.first().copied()).ok_or_else(|| OpError::invalid("Trilu k"))?),
        None => e::var(kb.let_(Ty::Index, e::cast(Ty::Index, e::load(k.buf, e::idx(0))))),
    })
}

/// Iterates over the output as `(n, c, h, i, w, j)` with `y = h*b + i`, `x = w*b + j`,
/// reading input channel `(i*b + j)*C + c` (DCR) or `c*b*b + i*b + j` (CRD) at (h, w):
/// both sides affine.
fn depth_to_space(cx: &mut LowerCx, x: &Operand, out: &Operand, b: usize, crd: bool) -> Result<(), OpError> {
    let (&[n, _, h, w], &[_, oc, _, _]) = (x.shape(), out.shape()) else {
        return Err(OpError::invalid("DepthToSpace needs 4-D tensors"));
    };
    let (st, ost) = (coeffs(x.shape()), coeffs(out.shape()));
    let bi = b as i64;
    let space = [n, oc, h, b, w, b];
    let dst = [ost[0], ost[1], bi * ost[2], ost[2], bi, 1];
    let src = if crd {
        [st[0], bi * bi * st[1], st[2], bi * st[1], 1, st[1]]
    } else {
        [st[0], st[1], st[2], bi * oc as i64 * st[1], 1, oc as i64 * st[1]]
    };
    let mut k = cx.kernel("");
    copy_nest(
        &mut k,
        &space,
        Access { buf: x.buf, base: 0, coeffs: src.to_vec() },
        Access { buf: out.buf, base: 0, coeffs: dst.to_vec() },
    );
    cx.emit(k.finish());
    Ok(())
}

/// The inverse of DCR DepthToSpace, iterating over `(n, i, j, c, y, x)`: output channel
/// `(i*b + j)*C + c` at (y, x) is input channel c at (y*b + i, x*b + j).
fn space_to_depth(cx: &mut LowerCx, x: &Operand, out: &Operand, b: usize) -> Result<(), OpError> {
    let (&[n, c, _, _], &[_, _, oh, ow]) = (x.shape(), out.shape()) else {
        return Err(OpError::invalid("SpaceToDepth needs 4-D tensors"));
    };
    let (st, ost) = (coeffs(x.shape()), coeffs(out.shape()));
    let (bi, ci) = (b as i64, c as i64);
    let space = [n, b, b, c, oh, ow];
    let dst = [ost[0], bi * ci * ost[1], ci * ost[1], ost[1], ost[2], 1];
    let src = [st[0], st[2], 1, st[1], bi * st[2], bi];
    let mut k = cx.kernel("");
    copy_nest(
        &mut k,
        &space,
        Access { buf: x.buf, base: 0, coeffs: src.to_vec() },
        Access { buf: out.buf, base: 0, coeffs: dst.to_vec() },
    );
    cx.emit(k.finish());
    Ok(())
}

/// Reinterprets each element's bits. Values are loaded widened (u32 as I64, u8 as I32
/// ...) and stores narrow with wrapping, so a same-width integer reinterpretation is a
/// plain copy through the wider type; float ↔ integer goes through `Bitcast` at the
/// float's width. 16-bit floats load as F32, so their bits are not at hand: unsupported.
fn bitcast(cx: &mut LowerCx, x: &Operand, out: &Operand) -> Result<(), OpError> {
    let (from, to) = (x.ty.dtype, out.ty.dtype);
    let (fty, tty) = (x.kty()?, out.kty()?);
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    if half(from) || half(to) || from.bits() != to.bits() {
        return Err(OpError::unsupported(format!("BitCast from {from} to {to}")));
    }
    // The same-width integer type of a float's bits.
    let bits_ty = |t: Ty| if t == Ty::F64 { Ty::I64 } else { Ty::I32 };
    let convert = move |v: Expr| -> Expr {
        match (fty.is_float(), tty.is_float()) {
            (true, true) => v,
            (true, false) => e::cast(tty, Expr::Bitcast(bits_ty(fty), Box::new(v))),
            (false, true) => Expr::Bitcast(tty, Box::new(e::cast(bits_ty(tty), v))),
            (false, false) => e::cast(tty, v),
        }
    };
    let mut k = cx.kernel("");
    k.for_(out.len(), |k, i| k.store(out.buf, i.clone(), convert(e::load(x.buf, i))));
    cx.emit(k.finish());
    Ok(())
}
