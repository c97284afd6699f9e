//! Lowering of the control family: `If`, `Loop` with a constant trip count and no early
//! exit, and `Scan` (opset 9+).
//!
//! A body is lowered into the program like any graph, then its kernels are taken back
//! and inlined into one kernel ([`control_body`](super::control_body)): under a
//! `Stmt::If` for the branches of `If`, inside a KIR loop for `Scan`. Each iteration of
//! a `Loop` stores the iteration number, runs the body and writes its scan outputs
//! at row `i`; each iteration of a `Scan` copies its slice of every scan input into a scratch buffer the body reads,
//! runs the body, writes its scan outputs at their position in the node's outputs, and
//! moves the new state into the state buffers through a second set of buffers, since a
//! body may return its state inputs permuted.

use std::sync::Arc;

use super::control_body::{copy_into, inline, Body};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::front::onnx::SubGraph;
use crate::ir::{DType, Tensor, TypeInfo};
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BufId, Expr, Kernel, Ty};
use crate::ops::control::{ControlOp, Scan};
use crate::ops::util::norm_axis;

pub fn lower(op: &ControlOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let (formal, captured) = op.split(ins);
    match op {
        ControlOp::If { then_branch, else_branch } => {
            let cond = formal.first().and_then(Option::as_ref).ok_or_else(|| OpError::invalid("If needs a condition"))?;
            // A constant condition: only the taken branch need make sense for these types.
            if let Some(c) = &cond.konst {
                let taken = if c.to_i64_vec().is_some_and(|v| v == [0]) { else_branch } else { then_branch };
                let kernels = branch(op, taken, cx, captured, outs)?;
                let mut k = cx.kernel("");
                inline(&mut k, kernels);
                cx.emit(k.finish());
                return Ok(());
            }
            let then = branch(op, then_branch, cx, captured, outs)?;
            let els = branch(op, else_branch, cx, captured, outs)?;
            let mut k = cx.kernel("");
            k.if_(e::load(cond.buf, e::idx(0)), |k| inline(k, then), |k| inline(k, els));
            cx.emit(k.finish());
            Ok(())
        }
        ControlOp::Loop { body } => lower_loop(op, body, cx, formal, captured, outs),
        ControlOp::Scan(s) => lower_scan(op, s, cx, formal, captured, outs),
    }
}

/// The captures `body` reads, as (type, operand) pairs for [`Body::new`].
fn captures<'a>(op: &ControlOp, body: &SubGraph, captured: &'a [Option<Operand>]) -> Result<Vec<(TypeInfo, Option<&'a Operand>)>, OpError> {
    let refs: Vec<Option<&Operand>> = captured.iter().map(Option::as_ref).collect();
    op.body_captures(body, &refs)
        .into_iter()
        .map(|c| c.map(|o| (o.ty.clone(), Some(o))).ok_or_else(|| OpError::invalid("a capture is missing")))
        .collect()
}

/// One branch of an `If`: its kernels followed by copies of its outputs into the
/// node's. Both branches must produce the node's output types.
fn branch(op: &ControlOp, body: &SubGraph, cx: &mut LowerCx, captured: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<Vec<Kernel>, OpError> {
    let inputs = captures(op, body, captured)?;
    let b = Body::new(body, &inputs)?;
    check_types(&b.output_types()?, outs.iter().map(|o| o.as_ref().map(|o| &o.ty)))?;
    let bufs: Vec<BufId> = inputs.iter().map(|(_, o)| o.map(|o| o.buf)).collect::<Option<_>>().ok_or_else(|| OpError::invalid("a capture is missing"))?;
    let (mut kernels, body_outs) = b.lower(cx, &bufs)?;
    let mut k = cx.kernel("out");
    for (src, out) in body_outs.iter().zip(outs) {
        if let Some(out) = out {
            copy_into(&mut k, *src, out.buf, out.len());
        }
    }
    kernels.push(k.finish());
    Ok(kernels)
}

/// Unsupported unless the body's output types are the expected ones (`None`: unused).
fn check_types<'a>(got: &[TypeInfo], want: impl Iterator<Item = Option<&'a TypeInfo>>) -> Result<(), OpError> {
    let want: Vec<Option<&TypeInfo>> = want.collect();
    if got.len() != want.len() || got.iter().zip(&want).any(|(g, w)| w.is_some_and(|w| w != g)) {
        return Err(OpError::unsupported("a body whose output types differ from the node's"));
    }
    Ok(())
}

/// A tensor viewed as `[outer, len, inner]` around one axis.
struct AxisView {
    outer: usize,
    len: usize,
    inner: usize,
}

impl AxisView {
    fn new(shape: &[usize], axis: usize) -> AxisView {
        AxisView { outer: shape[..axis].iter().product(), len: shape[axis], inner: shape[axis + 1..].iter().product() }
    }

    /// Copies between position `at` of this view in `whole` and the compact `part`
    /// (`to_part`: whole → part, else part → whole).
    fn copy(&self, k: &mut KernelBuilder, whole: BufId, part: BufId, at: &Expr, to_part: bool) {
        k.for_shape(&[self.outer, self.inner], |k, ix| {
            let p = iadd(imul(ix[0].clone(), self.inner as i64), ix[1].clone());
            let w = iadd(imul(iadd(imul(ix[0].clone(), self.len as i64), at.clone()), self.inner as i64), ix[1].clone());
            if to_part {
                k.store(part, p, e::load(whole, w));
            } else {
                k.store(whole, w, e::load(part, p));
            }
        });
    }
}

/// `Loop` with a constant trip count `M`, and a condition that is absent or constant
/// true both on entry and from the body: the iteration count is then known.
fn lower_loop(op: &ControlOp, body: &SubGraph, cx: &mut LowerCx, formal: &[Option<Operand>], captured: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let konst = |i: usize| formal.get(i).and_then(Option::as_ref).map(|o| o.konst.as_ref().and_then(|t| t.to_i64_vec()));
    let trip = match konst(0) {
        Some(Some(v)) if v.len() == 1 => v[0].max(0) as usize,
        _ => return Err(OpError::unsupported("Loop without a constant trip count")),
    };
    let enters = match konst(1) {
        None => true,
        Some(Some(v)) => v.len() == 1 && v[0] != 0,
        Some(None) => false,
    };
    if !enters {
        return Err(OpError::unsupported("Loop with a run-time condition"));
    }
    if trip > 1 << 24 {
        return Err(OpError::unsupported("Loop of more than 2^24 iterations"));
    }
    let carried: Vec<Operand> =
        formal.iter().skip(2).map(|o| o.clone().ok_or_else(|| OpError::invalid("a loop-carried value is missing"))).collect::<Result<_, _>>()?;
    let n = carried.len();
    let scalar = |d| TypeInfo::new(d, vec![]);
    // The body sees its condition input as the constant true: it is true on entry, and
    // if the body then returns a constant true, it is true on every iteration.
    let cond = cx.scratch("cond", DType::Bool, vec![]);
    let cond_in = Operand { buf: cond, ty: scalar(DType::Bool), konst: Some(Arc::new(Tensor::scalar(true))) };
    let mut body_in: Vec<(TypeInfo, Option<&Operand>)> = vec![(scalar(DType::I64), None), (scalar(DType::Bool), Some(&cond_in))];
    body_in.extend(carried.iter().map(|t| (t.ty.clone(), None)));
    body_in.extend(captures(op, body, captured)?);
    let b = Body::new(body, &body_in)?;
    if !b.output_is_true(0) {
        return Err(OpError::unsupported("Loop whose body may end it early"));
    }
    let types = b.output_types()?;
    if types.len() != 1 + outs.len() || outs.len() < n {
        return Err(OpError::invalid("the Loop body's outputs do not match the node's"));
    }
    check_types(&types[1..1 + n], carried.iter().map(|t| Some(&t.ty)))?;
    let want = types[1 + n..].iter().map(|t| TypeInfo::new(t.dtype, [vec![trip], t.shape.clone()].concat())).collect::<Vec<_>>();
    check_types(&want, outs[n..].iter().map(|o| o.as_ref().map(|o| &o.ty)))?;
    let iter = cx.scratch("iter", DType::I64, vec![]);
    let state: Vec<BufId> = carried.iter().map(|t| cx.scratch("state", t.ty.dtype, t.shape().to_vec())).collect();
    let next: Vec<BufId> = carried.iter().map(|t| cx.scratch("next", t.ty.dtype, t.shape().to_vec())).collect();
    let mut inputs = vec![iter, cond];
    inputs.extend(&state);
    for (_, o) in &body_in[2 + n..] {
        inputs.push(o.map(|o| o.buf).ok_or_else(|| OpError::invalid("a capture is missing"))?);
    }
    let (kernels, body_outs) = b.lower(cx, &inputs)?;
    let mut k = cx.kernel("");
    k.store(cond, e::idx(0), e::bool(true));
    for (t, &s) in carried.iter().zip(&state) {
        copy_into(&mut k, t.buf, s, t.len());
    }
    k.for_(trip, |k, it| {
        k.store(iter, e::idx(0), e::cast(Ty::I64, it.clone()));
        inline(k, kernels);
        for (out, &src) in outs[n..].iter().zip(&body_outs[1 + n..]) {
            if let Some(out) = out {
                AxisView::new(out.shape(), 0).copy(k, out.buf, src, &it, false);
            }
        }
        for (t, (&src, &nx)) in carried.iter().zip(body_outs[1..].iter().zip(&next)) {
            copy_into(k, src, nx, t.len());
        }
        for (t, (&nx, &s)) in carried.iter().zip(next.iter().zip(&state)) {
            copy_into(k, nx, s, t.len());
        }
    });
    for (out, &s) in outs[..n].iter().zip(&state) {
        if let Some(out) = out {
            copy_into(&mut k, s, out.buf, out.len());
        }
    }
    cx.emit(k.finish());
    Ok(())
}

fn lower_scan(op: &ControlOp, s: &Scan, cx: &mut LowerCx, formal: &[Option<Operand>], captured: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let present = |o: &Option<Operand>| o.clone().ok_or_else(|| OpError::invalid("a Scan input is missing"));
    let formal: Vec<Operand> = formal.iter().map(present).collect::<Result<_, _>>()?;
    let n_state = formal.len().checked_sub(s.num_scan_inputs).ok_or_else(|| OpError::invalid("Scan has fewer inputs than num_scan_inputs"))?;
    let (state, scan_in) = formal.split_at(n_state);
    // Scan inputs: their axis views and the slice each iteration reads.
    let mut len = 0;
    let mut in_views = Vec::new();
    for (k, t) in scan_in.iter().enumerate() {
        let axis = norm_axis(s.input_axes[k], t.shape().len())?;
        let v = AxisView::new(t.shape(), axis);
        len = v.len;
        let mut shape = t.shape().to_vec();
        shape.remove(axis);
        in_views.push((v, TypeInfo::new(t.ty.dtype, shape)));
    }
    let mut body_in: Vec<(TypeInfo, Option<&Operand>)> = state.iter().map(|t| (t.ty.clone(), None)).collect();
    body_in.extend(in_views.iter().map(|(_, t)| (t.clone(), None)));
    body_in.extend(captures(op, &s.body, captured)?);
    let body = Body::new(&s.body, &body_in)?;
    let body_types = body.output_types()?;
    if body_types.len() != outs.len() || body_types.len() < n_state {
        return Err(OpError::invalid("the Scan body's outputs do not match the node's"));
    }
    check_types(&body_types[..n_state], state.iter().map(|t| Some(&t.ty)))?;
    let scratch = |cx: &mut LowerCx, what: &str, t: &TypeInfo| cx.scratch(what, t.dtype, t.shape.clone());
    let state_bufs: Vec<BufId> = state.iter().map(|t| scratch(cx, "state", &t.ty)).collect();
    let next_bufs: Vec<BufId> = state.iter().map(|t| scratch(cx, "next", &t.ty)).collect();
    let slice_bufs: Vec<BufId> = in_views.iter().map(|(_, t)| scratch(cx, "slice", t)).collect();
    let mut inputs: Vec<BufId> = state_bufs.iter().chain(&slice_bufs).copied().collect();
    for (_, o) in &body_in[formal.len()..] {
        inputs.push(o.map(|o| o.buf).ok_or_else(|| OpError::invalid("a capture is missing"))?);
    }
    let (kernels, body_outs) = body.lower(cx, &inputs)?;
    // Scan outputs: the node's output must be the body's with `len` inserted at the axis.
    let mut out_views = Vec::new();
    for (k, t) in body_types[n_state..].iter().enumerate() {
        let axis = norm_axis(s.output_axes[k], t.shape.len() + 1)?;
        let mut shape = t.shape.clone();
        shape.insert(axis, len);
        let out = &outs[n_state + k];
        if out.as_ref().is_some_and(|o| o.ty != TypeInfo::new(t.dtype, shape.clone())) {
            return Err(OpError::unsupported("a Scan output whose type differs from the body's"));
        }
        out_views.push(AxisView::new(&shape, axis));
    }
    let at = |it: &Expr, reverse: bool| if reverse { e::sub(e::idx(len as i64 - 1), it.clone()) } else { it.clone() };
    let mut k = cx.kernel("");
    for (t, &b) in state.iter().zip(&state_bufs) {
        copy_into(&mut k, t.buf, b, t.len());
    }
    k.for_(len, |k, it| {
        for (i, ((v, _), &part)) in in_views.iter().zip(&slice_bufs).enumerate() {
            v.copy(k, scan_in[i].buf, part, &at(&it, s.input_directions[i] == 1), true);
        }
        inline(k, kernels);
        for (i, (v, out)) in out_views.iter().zip(&outs[n_state..]).enumerate() {
            if let Some(out) = out {
                v.copy(k, out.buf, body_outs[n_state + i], &at(&it, s.output_directions[i] == 1), false);
            }
        }
        for (t, (&src, &next)) in state.iter().zip(body_outs.iter().zip(&next_bufs)) {
            copy_into(k, src, next, t.len());
        }
        for (t, (&next, &b)) in state.iter().zip(next_bufs.iter().zip(&state_bufs)) {
            copy_into(k, next, b, t.len());
        }
    });
    for (out, &b) in outs[..n_state].iter().zip(&state_bufs) {
        if let Some(out) = out {
            copy_into(&mut k, b, out.buf, out.len());
        }
    }
    cx.emit(k.finish());
    Ok(())
}
