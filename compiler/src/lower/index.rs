//! Lowering of the index family to KIR.
//!
//! Slice has constant bounds, so it is an affine copy (negative steps are negative
//! coefficients). The gathers and scatters take runtime index tensors: each index is
//! loaded once where it is used, made an Index, wrapped if negative and checked — out of
//! range, the kernel fails with code 6 — and the innermost loop then moves the
//! contiguous run of elements the index selects. Scatters copy the data into the output
//! first and apply the updates in order, one at a time, so duplicate indices combine
//! (or overwrite) exactly as the reference does. Compress, NonZero and Unique have
//! value-dependent output shapes: they only compile when folded away.

use super::shape::util::{
    affine, check_storage, checked_index, coeffs, copy_into, copy_nest, ge, input, ints_arg, konst_ints, lit, lt,
    needs_check, opt_input, or, output, times, Access, ERR_INDEX_OUT_OF_RANGE,
};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty};
use crate::ops::index::{IndexOp, Reduction};
use crate::ops::shape::layout::IntsArg;
use crate::ops::util::{norm_axes, norm_axis};

pub fn lower(op: &IndexOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    check_storage(ins, outs)?;
    let x = input(ins, 0)?;
    let out = output(outs, 0)?;
    match op {
        IndexOp::Slice { starts, ends, axes, steps } => slice(cx, ins, out, [starts, ends, axes, steps]),
        IndexOp::Gather { axis } => gather(cx, x, input(ins, 1)?, out, *axis),
        IndexOp::GatherElements { axis } => gather_elements(cx, x, input(ins, 1)?, out, *axis),
        IndexOp::GatherND { batch_dims } => gather_nd(cx, x, input(ins, 1)?, out, *batch_dims),
        IndexOp::ScatterElements { axis, reduction } => {
            scatter_elements(cx, x, input(ins, 1)?, input(ins, 2)?, out, *axis, *reduction)
        }
        IndexOp::ScatterND { reduction } => scatter_nd(cx, x, input(ins, 1)?, input(ins, 2)?, out, *reduction),
        IndexOp::OneHot { axis } => one_hot(cx, x, input(ins, 2)?, out, *axis),
        IndexOp::ReverseSequence { batch_axis, time_axis } => {
            reverse_sequence(cx, x, input(ins, 1)?, out, *batch_axis, *time_axis)
        }
        IndexOp::TensorScatter { circular, axis } => {
            tensor_scatter(cx, x, input(ins, 1)?, opt_input(ins, 2), out, *axis, *circular)
        }
        IndexOp::Compress { axis } => compress(cx, ins, out, *axis),
        IndexOp::NonZero | IndexOp::Unique { .. } => {
            Err(OpError::unsupported("an output shape that depends on input values"))
        }
    }
}

// ---------------------------------------------------------------------------------
// Slice

/// numpy's `slice.indices` for one axis: the first position and step (the length is
/// the output's). Negative bounds count from the end, then are clamped into `0..=n`
/// (positive step) or `-1..=n-1` (negative step).
fn axis_start(n: usize, start: i64, step: i64) -> Result<i64, OpError> {
    if step == 0 {
        return Err(OpError::invalid("Slice step 0"));
    }
    let n = n as i128;
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let s = start as i128;
    Ok((if s < 0 { s + n } else { s }).clamp(lo, hi) as i64)
}

/// Output coordinate `o` on axis d reads input coordinate `start_d + o * step_d`.
fn slice(cx: &mut LowerCx, ins: &[Option<Operand>], out: &Operand, args: [&IntsArg; 4]) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let rank = x.shape().len();
    let [starts, _, axes, steps] = args;
    let starts = ints_arg(ins, starts, "starts")?.ok_or_else(|| OpError::invalid("Slice needs starts"))?;
    let axes = match ints_arg(ins, axes, "axes")? {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..starts.len()).collect(),
    };
    let steps = ints_arg(ins, steps, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() || out.shape().len() != rank {
        return Err(OpError::invalid("Slice: starts, axes and steps differ in length"));
    }
    let st = coeffs(x.shape());
    let (mut base, mut src) = (0, st.clone());
    for (k, &a) in axes.iter().enumerate() {
        if out.shape()[a] == 0 {
            return Ok(());
        }
        let s = axis_start(x.shape()[a], starts[k], steps[k])?;
        let last = s as i128 + (out.shape()[a] as i128 - 1) * steps[k] as i128;
        if !(0..x.shape()[a] as i128).contains(&(s as i128)) || !(0..x.shape()[a] as i128).contains(&last) {
            return Err(OpError::invalid("Slice bounds do not match the output shape"));
        }
        base += s * st[a];
        // A single position needs no step (and a huge step would overflow).
        src[a] = if out.shape()[a] == 1 { 0 } else { steps[k] * st[a] };
    }
    let mut k = cx.kernel("");
    copy_nest(&mut k, out.shape(), Access { buf: x.buf, base, coeffs: src }, Access::dense(out.buf, out.shape()));
    cx.emit(k.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// Compress

/// The condition is a constant (it decides the output shape): each run of consecutive
/// kept positions along the axis (of the flattened input without an axis) is one slab
/// copy, so no per-element table is needed.
fn compress(cx: &mut LowerCx, ins: &[Option<Operand>], out: &Operand, axis: Option<i64>) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let cond = konst_ints(ins, 1, "condition")?.ok_or_else(|| OpError::invalid("Compress needs a condition"))?;
    let (shape, a) = match axis {
        Some(axis) => (x.shape().to_vec(), norm_axis(axis, x.shape().len())?),
        None => (vec![x.len()], 0),
    };
    let picked: Vec<usize> = cond.iter().enumerate().filter(|(_, &c)| c != 0).map(|(i, _)| i).collect();
    let mut oshape = shape.clone();
    oshape[a] = picked.len();
    if picked.last().is_some_and(|&i| i >= shape[a]) || oshape.iter().product::<usize>() != out.len() {
        return Err(OpError::invalid("Compress condition does not match the output"));
    }
    let (st, ost) = (coeffs(&shape), coeffs(&oshape));
    let mut k = cx.kernel("");
    let mut done = 0;
    for run in picked.chunk_by(|p, q| p + 1 == *q) {
        let mut space = oshape.clone();
        space[a] = run.len();
        let src = Access { buf: x.buf, base: run[0] as i64 * st[a], coeffs: st.clone() };
        copy_nest(&mut k, &space, src, Access { buf: out.buf, base: done * ost[a], coeffs: ost.clone() });
        done += run.len() as i64;
    }
    cx.emit(k.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// Gather, GatherElements, GatherND

/// Output `(outer, j..., inner)` is input `(outer, indices[j...], inner)`: the index is
/// loaded and checked once per `(outer, j...)`, then the inner run is copied.
fn gather(cx: &mut LowerCx, x: &Operand, ind: &Operand, out: &Operand, axis: i64) -> Result<(), OpError> {
    let a = norm_axis(axis, x.shape().len())?;
    let (outer, n, inner) = split_at_axis(x.shape(), a);
    let check = needs_check(ind, n)?;
    let q = ind.len();
    if out.len() != outer * q * inner {
        return Err(OpError::invalid("Gather output does not match data and indices"));
    }
    let mut k = cx.kernel("");
    k.for_shape(&[outer, q], |k, ix| {
        let (o, j) = (ix[0].clone(), ix[1].clone());
        let pos = checked_index(k, e::load(ind.buf, j.clone()), n, check);
        let src = affine(0, &[o.clone(), pos], &[(n * inner) as i64, inner as i64]);
        let dst = affine(0, &[o, j], &[(q * inner) as i64, inner as i64]);
        k.for_(inner, |k, i| {
            let v = e::load(x.buf, iadd(src.clone(), i.clone()));
            k.store(out.buf, iadd(dst.clone(), i), v);
        });
    });
    cx.emit(k.finish());
    Ok(())
}

/// `(elements before axis, axis dim, elements after axis)` of `shape`.
fn split_at_axis(shape: &[usize], a: usize) -> (usize, usize, usize) {
    (shape[..a].iter().product(), shape[a], shape[a + 1..].iter().product())
}

/// Output element `o` (shaped like the indices) is input `o` with coordinate `axis`
/// replaced by `indices[o]`.
fn gather_elements(cx: &mut LowerCx, x: &Operand, ind: &Operand, out: &Operand, axis: i64) -> Result<(), OpError> {
    let a = norm_axis(axis, x.shape().len())?;
    check_fits(x.shape(), ind.shape(), a, "GatherElements")?;
    let st = coeffs(x.shape());
    let n = x.shape()[a];
    let check = needs_check(ind, n)?;
    let mut k = cx.kernel("");
    k.for_shape(ind.shape(), |k, ix| {
        let at = linear(ind.shape(), ix);
        let pos = checked_index(k, e::load(ind.buf, at.clone()), n, check);
        let mut src = ix.to_vec();
        src[a] = pos;
        let v = e::load(x.buf, affine(0, &src, &st));
        k.store(out.buf, at, v);
    });
    cx.emit(k.finish());
    Ok(())
}

/// Index tensors of the element ops must have the data's rank and, off the axis, no
/// larger dims (checked at compile time: the shapes are static).
fn check_fits(data: &[usize], ind: &[usize], a: usize, op: &str) -> Result<(), OpError> {
    let fits = ind.len() == data.len() && (0..data.len()).all(|d| d == a || ind[d] <= data[d]);
    if !fits {
        return Err(OpError::invalid(format!("{op}: indices {ind:?} do not fit data {data:?}")));
    }
    Ok(())
}

/// Each index tuple (after `b` batch dims) selects a contiguous slab of the data: the
/// tuple is loaded and checked once, then the slab is copied.
fn gather_nd(cx: &mut LowerCx, x: &Operand, ind: &Operand, out: &Operand, b: usize) -> Result<(), OpError> {
    let (xs, is) = (x.shape(), ind.shape());
    let m = *is.last().ok_or_else(|| OpError::invalid("GatherND indices must have rank 1 or more"))?;
    if b >= is.len() || b + m > xs.len() || m < 1 || xs[..b] != is[..b] {
        return Err(OpError::invalid(format!("GatherND: data {xs:?}, indices {is:?}, batch_dims {b}")));
    }
    let st = coeffs(xs);
    let batches: usize = is[..b].iter().product();
    let tuples: usize = is[b..is.len() - 1].iter().product();
    let slab: usize = xs[b + m..].iter().product();
    let batch_stride = if b == 0 { 0 } else { st[b - 1] };
    if out.len() != batches * tuples * slab {
        return Err(OpError::invalid("GatherND output does not match data and indices"));
    }
    let mut k = cx.kernel("");
    k.for_shape(&[batches, tuples], |k, ix| {
        let t = affine(0, ix, &[tuples as i64, 1]);
        let mut src = affine(0, &ix[..1], &[batch_stride]);
        for j in 0..m {
            let raw = e::load(ind.buf, iadd(e::idx(j as i64), times(t.clone(), m as i64)));
            let pos = checked_index(k, raw, xs[b + j], true);
            src = iadd(src, times(pos, st[b + j]));
        }
        let src = e::var(k.let_(Ty::Index, src));
        let dst = times(t, slab as i64);
        k.for_(slab, |k, i| {
            let v = e::load(x.buf, iadd(src.clone(), i.clone()));
            k.store(out.buf, iadd(dst.clone(), i), v);
        });
    });
    cx.emit(k.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// ScatterElements, ScatterND, TensorScatter

/// `out[at] = combine(out[at], v)` for a scatter reduction. Max/min follow Python's
/// `max(old, new)`: the update wins only when strictly beyond (so NaN never wins); on
/// bools add/max are `or` and mul/min are `and`.
fn combine(k: &mut KernelBuilder, out: BufId, ty: Ty, at: Expr, v: Expr, r: Reduction) {
    let old = e::load(out, at.clone());
    let value = match (r, ty) {
        (Reduction::None, _) => v,
        (Reduction::Add | Reduction::Max, Ty::Bool) => e::bin(BinOp::Or, old, v),
        (Reduction::Mul | Reduction::Min, Ty::Bool) => e::bin(BinOp::And, old, v),
        (Reduction::Add, _) => e::add(old, v),
        (Reduction::Mul, _) => e::mul(old, v),
        (Reduction::Max | Reduction::Min, _) => {
            let v = e::var(k.let_(ty, v));
            let beyond = e::bin(if r == Reduction::Max { BinOp::Gt } else { BinOp::Lt }, v.clone(), old.clone());
            e::select(beyond, v, old)
        }
    };
    k.store(out, at, value);
}

fn scatter_elements(
    cx: &mut LowerCx,
    x: &Operand,
    ind: &Operand,
    upd: &Operand,
    out: &Operand,
    axis: i64,
    r: Reduction,
) -> Result<(), OpError> {
    let a = norm_axis(axis, x.shape().len())?;
    check_fits(x.shape(), ind.shape(), a, "ScatterElements")?;
    if upd.shape() != ind.shape() {
        return Err(OpError::invalid("ScatterElements: updates and indices differ in shape"));
    }
    copy_into(cx, x, out);
    let st = coeffs(x.shape());
    let n = x.shape()[a];
    let check = needs_check(ind, n)?;
    let ty = out.kty()?;
    let mut k = cx.kernel("");
    k.for_shape(ind.shape(), |k, ix| {
        let at = linear(ind.shape(), ix);
        let pos = checked_index(k, e::load(ind.buf, at.clone()), n, check);
        let mut dst = ix.to_vec();
        dst[a] = pos;
        combine(k, out.buf, ty, affine(0, &dst, &st), e::load(upd.buf, at), r);
    });
    cx.emit(k.finish());
    Ok(())
}

/// Each index tuple addresses a contiguous slab of the output, which receives a slab of
/// the updates.
fn scatter_nd(
    cx: &mut LowerCx,
    x: &Operand,
    ind: &Operand,
    upd: &Operand,
    out: &Operand,
    r: Reduction,
) -> Result<(), OpError> {
    let (xs, is) = (x.shape(), ind.shape());
    let m = *is.last().ok_or_else(|| OpError::invalid("ScatterND indices must have rank 1 or more"))?;
    let want = [&is[..is.len() - 1], xs.get(m..).unwrap_or(&[])].concat();
    if m > xs.len() || upd.shape() != want {
        return Err(OpError::invalid(format!("ScatterND: data {xs:?}, indices {is:?}, updates {:?}", upd.shape())));
    }
    copy_into(cx, x, out);
    let st = coeffs(xs);
    let tuples: usize = is[..is.len() - 1].iter().product();
    let slab: usize = xs[m..].iter().product();
    let ty = out.kty()?;
    let mut k = cx.kernel("");
    k.for_(tuples, |k, t| {
        let mut dst = e::idx(0);
        for j in 0..m {
            let raw = e::load(ind.buf, iadd(e::idx(j as i64), times(t.clone(), m as i64)));
            let pos = checked_index(k, raw, xs[j], true);
            dst = iadd(dst, times(pos, st[j]));
        }
        let dst = e::var(k.let_(Ty::Index, dst));
        let src = times(t, slab as i64);
        k.for_(slab, |k, i| {
            let v = e::load(upd.buf, iadd(src.clone(), i.clone()));
            combine(k, out.buf, ty, iadd(dst.clone(), i), v, r);
        });
    });
    cx.emit(k.finish());
    Ok(())
}

/// The update is written into the cache along the sequence axis at each batch entry's
/// write index (0 without the input), modulo the cache length when circular; a linear
/// write past the end fails with code 6.
fn tensor_scatter(
    cx: &mut LowerCx,
    cache: &Operand,
    upd: &Operand,
    write: Option<&Operand>,
    out: &Operand,
    axis: i64,
    circular: bool,
) -> Result<(), OpError> {
    let (cs, us) = (cache.shape(), upd.shape());
    let a = norm_axis(axis, cs.len())?;
    let fits =
        a > 0 && cs.len() == us.len() && (0..cs.len()).all(|i| if i == a { us[i] <= cs[i] } else { us[i] == cs[i] });
    if !fits || write.is_some_and(|w| w.len() != cs[0]) {
        return Err(OpError::invalid(format!("TensorScatter: update {us:?} does not fit cache {cs:?} on axis {a}")));
    }
    copy_into(cx, cache, out);
    let st = coeffs(cs);
    let len = cs[a] as i64;
    let mut k = cx.kernel("");
    k.for_shape(us, |k, ix| {
        let start = match write {
            Some(w) => e::cast(Ty::Index, e::load(w.buf, ix[0].clone())),
            None => e::idx(0),
        };
        let pos = k.let_(Ty::Index, iadd(start, ix[a].clone()));
        let p = e::var(pos);
        if circular {
            let m = e::bin(BinOp::Rem, p.clone(), e::idx(len.max(1)));
            k.set(pos, e::bin(BinOp::Rem, e::add(m, e::idx(len.max(1))), e::idx(len.max(1))));
        }
        k.if_(or(lt(p.clone(), e::idx(0)), ge(p.clone(), e::idx(len))), |k| k.fail(ERR_INDEX_OUT_OF_RANGE), |_| {});
        let mut dst = ix.to_vec();
        dst[a] = p;
        let v = e::load(upd.buf, linear(us, ix));
        k.store(out.buf, affine(0, &dst, &st), v);
    });
    cx.emit(k.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// OneHot, ReverseSequence

/// Output position `k` along the new axis is `on` where the index (negatives counted
/// from `depth`) equals `k`, `off` elsewhere — so out-of-range indices give all `off`,
/// as the spec says, and need no check. Integer indices compare exactly as Index
/// values, float indices in their own type.
fn one_hot(cx: &mut LowerCx, ind: &Operand, values: &Operand, out: &Operand, axis: i64) -> Result<(), OpError> {
    let a = norm_axis(axis, ind.shape().len() + 1)?;
    if values.len() != 2 || out.shape().len() != ind.shape().len() + 1 {
        return Err(OpError::invalid("OneHot values must be [off, on]"));
    }
    let depth = out.shape()[a];
    let ity = ind.kty()?;
    let cty = if ity.is_float() { ity } else { Ty::Index };
    let mut k = cx.kernel("");
    let ty = out.kty()?;
    let off = e::var(k.let_(ty, e::load(values.buf, e::idx(0))));
    let on = e::var(k.let_(ty, e::load(values.buf, e::idx(1))));
    let (outer, inner): (usize, usize) = (ind.shape()[..a].iter().product(), ind.shape()[a..].iter().product());
    k.for_shape(&[outer, depth, inner], |k, ix| {
        let raw = e::cast(cty, e::load(ind.buf, affine(0, &[ix[0].clone(), ix[2].clone()], &[inner as i64, 1])));
        let i = e::var(k.let_(cty, raw));
        let wrapped = e::select(lt(i.clone(), lit(cty, 0.0)), e::add(i.clone(), lit(cty, depth as f64)), i);
        let hit = e::bin(BinOp::Eq, wrapped, e::cast(cty, ix[1].clone()));
        let at = affine(0, ix, &[(depth * inner) as i64, inner as i64, 1]);
        k.store(out.buf, at, e::select(hit, on.clone(), off.clone()));
    });
    cx.emit(k.finish());
    Ok(())
}

/// Along the time axis, the first `lens[b]` entries of batch entry b are reversed: time
/// step t reads `len - 1 - t` below `len`, itself from there. Each length is loaded and
/// checked (0..=steps, else code 6) once per batch entry.
fn reverse_sequence(
    cx: &mut LowerCx,
    x: &Operand,
    lens: &Operand,
    out: &Operand,
    batch_axis: i64,
    time_axis: i64,
) -> Result<(), OpError> {
    let rank = x.shape().len();
    let (b, t) = (norm_axis(batch_axis, rank)?, norm_axis(time_axis, rank)?);
    if rank < 2 || b == t || b > 1 || t > 1 || lens.len() != x.shape()[b] {
        return Err(OpError::invalid("ReverseSequence: batch_axis and time_axis must be 0 and 1"));
    }
    let st = coeffs(x.shape());
    let (batches, steps) = (x.shape()[b], x.shape()[t]);
    let inner: usize = x.shape()[2..].iter().product();
    let mut k = cx.kernel("");
    k.for_(batches, |k, bi| {
        let len = k.let_(Ty::Index, e::cast(Ty::Index, e::load(lens.buf, bi.clone())));
        let l = e::var(len);
        k.if_(
            or(lt(l.clone(), e::idx(0)), e::bin(BinOp::Gt, l.clone(), e::idx(steps as i64))),
            |k| k.fail(ERR_INDEX_OUT_OF_RANGE),
            |_| {},
        );
        k.for_(steps, |k, ti| {
            let rev = e::sub(e::sub(l.clone(), e::idx(1)), ti.clone());
            let from = e::var(k.let_(Ty::Index, e::select(lt(ti.clone(), l.clone()), rev, ti.clone())));
            let src = iadd(times(bi.clone(), st[b]), times(from, st[t]));
            let dst = iadd(times(bi.clone(), st[b]), times(ti, st[t]));
            k.for_(inner, |k, i| {
                let v = e::load(x.buf, iadd(src.clone(), i.clone()));
                k.store(out.buf, iadd(dst.clone(), i), v);
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}
