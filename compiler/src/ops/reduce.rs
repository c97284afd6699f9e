//! The reduce family: `Reduce*` over a set of axes, `ArgMax`/`ArgMin`, `TopK` and the
//! scans `CumSum`/`CumProd`.
//!
//! Evaluation works on a dtype-erased numeric view ([`Num`]): floats are computed in
//! `f64` and cast back, integers in `i128` with wrapping arithmetic (truncated back to
//! the element type, which gives numpy's modular results exactly), bools separately.
//! The lane/group helpers here are shared with `normalize.rs`.

use super::util::{input, norm_axes, norm_axis, opt_input};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum ReduceOp {
    Reduce(Reduce),
    /// `ArgMax` (`max`) / `ArgMin`: index of the extreme along one axis, as int64.
    Arg { max: bool, axis: i64, keepdims: bool, select_last_index: bool },
    /// `TopK`: the `k` largest (or smallest) values along `axis`, sorted, with indices.
    /// Ties go to the lower index. `sorted=0` leaves the order free; edgec sorts anyway.
    TopK { k: KSource, axis: i64, largest: bool },
    /// `CumSum` (`prod = false`) / `CumProd` along the axis given by input 1.
    Cum { prod: bool, exclusive: bool, reverse: bool },
}

/// Where `TopK` gets `k`: an attribute before opset 10, input 1 from then on.
#[derive(Clone, Debug)]
pub enum KSource {
    Attr(i64),
    Input,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

/// Where the reduced axes come from: the `axes` attribute (older opsets) or input 1
/// (`ReduceSum` from opset 13, the others from 18).
#[derive(Clone, Debug)]
pub enum AxesSource {
    Attr(Option<Vec<i64>>),
    Input,
}

#[derive(Clone, Debug)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axes: AxesSource,
    pub keepdims: bool,
    /// With no axes: reduce nothing (instead of everything).
    pub noop_with_empty_axes: bool,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let r = match ctx.op_type {
        "ArgMax" | "ArgMin" => parse_arg(ctx),
        "TopK" => parse_topk(ctx),
        "CumSum" | "CumProd" => parse_cum(ctx),
        name => parse_reduce(ctx, reduce_kind(name)?),
    };
    Some(r.map(Op::Reduce))
}

fn reduce_kind(op_type: &str) -> Option<ReduceKind> {
    use ReduceKind::*;
    Some(match op_type {
        "ReduceSum" => Sum,
        "ReduceMean" => Mean,
        "ReduceMax" => Max,
        "ReduceMin" => Min,
        "ReduceProd" => Prod,
        "ReduceL1" => L1,
        "ReduceL2" => L2,
        "ReduceLogSum" => LogSum,
        "ReduceLogSumExp" => LogSumExp,
        "ReduceSumSquare" => SumSquare,
        _ => return None,
    })
}

fn parse_reduce(ctx: &NodeCtx, kind: ReduceKind) -> Result<ReduceOp, OpError> {
    let axes_as_input_since = if kind == ReduceKind::Sum { 13 } else { 18 };
    let axes = if ctx.opset >= axes_as_input_since {
        AxesSource::Input
    } else {
        AxesSource::Attr(ctx.ints("axes")?)
    };
    Ok(ReduceOp::Reduce(Reduce {
        kind,
        axes,
        keepdims: ctx.int_or("keepdims", 1)? != 0,
        noop_with_empty_axes: ctx.int_or("noop_with_empty_axes", 0)? != 0,
    }))
}

fn parse_arg(ctx: &NodeCtx) -> Result<ReduceOp, OpError> {
    Ok(ReduceOp::Arg {
        max: ctx.op_type == "ArgMax",
        axis: ctx.int_or("axis", 0)?,
        keepdims: ctx.int_or("keepdims", 1)? != 0,
        select_last_index: ctx.int_or("select_last_index", 0)? != 0,
    })
}

fn parse_topk(ctx: &NodeCtx) -> Result<ReduceOp, OpError> {
    let k = if ctx.opset >= 10 { KSource::Input } else { KSource::Attr(ctx.required("k", ctx.int("k"))?) };
    Ok(ReduceOp::TopK { k, axis: ctx.int_or("axis", -1)?, largest: ctx.int_or("largest", 1)? != 0 })
}

fn parse_cum(ctx: &NodeCtx) -> Result<ReduceOp, OpError> {
    Ok(ReduceOp::Cum {
        prod: ctx.op_type == "CumProd",
        exclusive: ctx.int_or("exclusive", 0)? != 0,
        reverse: ctx.int_or("reverse", 0)? != 0,
    })
}

impl Semantics for ReduceOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        match self {
            ReduceOp::Reduce(r) => {
                check_reduce_dtype(r.kind, x.dtype)?;
                let axes = match &r.axes {
                    AxesSource::Attr(a) => a.clone(),
                    AxesSource::Input => ctx.const_ints(1, "axes")?,
                };
                let mask = r.reduced_mask(axes.as_deref(), x.rank())?;
                Ok(vec![TypeInfo::new(x.dtype, reduced_shape(&x.shape, &mask, r.keepdims))])
            }
            ReduceOp::Arg { axis, keepdims, .. } => {
                check_numeric("ArgMax/ArgMin", x.dtype)?;
                let a = norm_axis(*axis, x.rank())?;
                let mask: Vec<bool> = (0..x.rank()).map(|i| i == a).collect();
                Ok(vec![TypeInfo::new(DType::I64, reduced_shape(&x.shape, &mask, *keepdims))])
            }
            ReduceOp::TopK { k, axis, .. } => {
                check_numeric("TopK", x.dtype)?;
                let k = match k {
                    KSource::Attr(k) => *k,
                    KSource::Input => single_int(ctx.const_ints(1, "K")?, "K")?,
                };
                let (a, k) = topk_axis_k(&x.shape, *axis, k)?;
                let mut shape = x.shape.clone();
                shape[a] = k;
                Ok(vec![TypeInfo::new(x.dtype, shape.clone()), TypeInfo::new(DType::I64, shape)])
            }
            ReduceOp::Cum { .. } => {
                check_numeric("CumSum/CumProd", x.dtype)?;
                if x.rank() == 0 {
                    return Err(OpError::invalid("CumSum/CumProd input must have rank >= 1"));
                }
                Ok(vec![x.clone()])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        match self {
            ReduceOp::Reduce(r) => {
                let axes = match &r.axes {
                    AxesSource::Attr(a) => a.clone(),
                    AxesSource::Input => opt_input(inputs, 1).map(int_values).transpose()?,
                };
                Ok(vec![eval_reduce(r, x, axes.as_deref())?])
            }
            ReduceOp::Arg { max, axis, keepdims, select_last_index } => {
                Ok(vec![eval_arg(x, *max, *axis, *keepdims, *select_last_index)?])
            }
            ReduceOp::TopK { k, axis, largest } => {
                let k = match k {
                    KSource::Attr(k) => *k,
                    KSource::Input => single_int(Some(int_values(input(inputs, 1)?)?), "K")?,
                };
                eval_topk(x, k, *axis, *largest)
            }
            ReduceOp::Cum { prod, exclusive, reverse } => {
                let axis = single_int(Some(int_values(input(inputs, 1)?)?), "axis")?;
                Ok(vec![eval_cum(x, axis, *prod, *exclusive, *reverse)?])
            }
        }
    }

    fn passthrough(&self, inputs: &[Option<TypeInfo>]) -> Option<usize> {
        use ReduceKind::*;
        match self {
            // Reducing over no axis leaves these unchanged (the others still map
            // each element: L2 gives |x|, LogSum ln(x) ...).
            ReduceOp::Reduce(r) if r.noop_with_empty_axes && matches!(r.kind, Sum | Mean | Max | Min | Prod) => {
                let no_axes = match &r.axes {
                    AxesSource::Attr(a) => a.as_ref().is_none_or(|a| a.is_empty()),
                    AxesSource::Input => inputs.get(1).is_none_or(|t| t.is_none()),
                };
                no_axes.then_some(0)
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------
// Shared numeric view and lane helpers (also used by normalize.rs).

/// A tensor's elements, dtype-erased for arithmetic: floats as `f64`, integers as
/// `i128` (every integer type fits, so wrapping arithmetic truncated back is exact).
pub(super) enum Num {
    F(Vec<f64>),
    I(Vec<i128>),
    B(Vec<bool>),
}

/// The numeric view of `t`; the raw-bit types (8-bit floats, 4/2-bit ints) are unsupported.
pub(super) fn num(t: &Tensor) -> Result<Num, OpError> {
    Ok(match t {
        Tensor::F32(_) | Tensor::F64(_) | Tensor::F16(_) | Tensor::BF16(_) => Num::F(t.to_f64_vec()),
        Tensor::I8(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::U8(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::I16(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::U16(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::I32(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::U32(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::I64(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::U64(a) => Num::I(a.iter().map(|&v| v as i128).collect()),
        Tensor::Bool(a) => Num::B(a.iter().copied().collect()),
        Tensor::Packed(d, _) => return Err(OpError::unsupported(format!("element type {d} in this op"))),
    })
}

/// A tensor of integer type `dtype` from `i128` values, truncating (wrapping) each.
pub(super) fn from_ints(dtype: DType, shape: &[usize], v: Vec<i128>) -> Result<Tensor, OpError> {
    Ok(match dtype {
        DType::I8 => Tensor::from_vec(shape, v.into_iter().map(|x| x as i8).collect()),
        DType::U8 => Tensor::from_vec(shape, v.into_iter().map(|x| x as u8).collect()),
        DType::I16 => Tensor::from_vec(shape, v.into_iter().map(|x| x as i16).collect()),
        DType::U16 => Tensor::from_vec(shape, v.into_iter().map(|x| x as u16).collect()),
        DType::I32 => Tensor::from_vec(shape, v.into_iter().map(|x| x as i32).collect()),
        DType::U32 => Tensor::from_vec(shape, v.into_iter().map(|x| x as u32).collect()),
        DType::I64 => Tensor::from_vec(shape, v.into_iter().map(|x| x as i64).collect()),
        DType::U64 => Tensor::from_vec(shape, v.into_iter().map(|x| x as u64).collect()),
        d => return Err(OpError::invalid(format!("{d} is not an integer type"))),
    })
}

/// A tensor of type `dtype` from `f64` values (rounded / truncated like a C cast).
pub(super) fn from_floats(dtype: DType, shape: &[usize], v: Vec<f64>) -> Tensor {
    let t = Tensor::from_vec(shape, v);
    if dtype == DType::F64 { t } else { t.cast(dtype) }
}

/// The value range of an integer type, for the identity of max/min over nothing.
fn int_bounds(dtype: DType) -> (i128, i128) {
    match dtype {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    }
}

pub(super) use super::util::numel;

/// `(outer, n, inner)` for lanes along `axis`: element `(o, i, j)` sits at
/// `(o * n + i) * inner + j`.
pub(super) fn lanes(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// For each cell of the reduced tensor (in row-major order), the flat indices of the
/// input elements that fold into it, in input order. `mask[d]` marks reduced axes.
pub(super) fn groups(shape: &[usize], mask: &[bool]) -> Result<Vec<Vec<usize>>, OpError> {
    let total = numel(shape)?;
    let kept: Vec<usize> = shape.iter().zip(mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
    let mut out = vec![Vec::new(); numel(&kept)?];
    let mut idx = vec![0usize; shape.len()];
    for flat in 0..total {
        let mut o = 0;
        for d in 0..shape.len() {
            o = o * kept[d] + if mask[d] { 0 } else { idx[d] };
        }
        out[o].push(flat);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// The shape after reducing the masked axes.
pub(super) fn reduced_shape(shape: &[usize], mask: &[bool], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(mask)
        .filter_map(|(&d, &m)| match (m, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Integer values of an axes / k / axis tensor.
pub(super) fn int_values(t: &Tensor) -> Result<Vec<i64>, OpError> {
    t.to_i64_vec().ok_or_else(|| OpError::invalid("expected an integer tensor"))
}

/// The single value of a scalar or one-element integer input.
fn single_int(v: Option<Vec<i64>>, what: &str) -> Result<i64, OpError> {
    match v.as_deref() {
        Some([k]) => Ok(*k),
        _ => Err(OpError::invalid(format!("{what} must hold exactly one integer"))),
    }
}

fn check_numeric(what: &str, d: DType) -> Result<(), OpError> {
    if d.is_packed() || d == DType::Bool {
        return Err(OpError::unsupported(format!("{what} on {d}")));
    }
    Ok(())
}

fn check_reduce_dtype(kind: ReduceKind, d: DType) -> Result<(), OpError> {
    if d.is_packed() || (d == DType::Bool && !matches!(kind, ReduceKind::Max | ReduceKind::Min)) {
        return Err(OpError::unsupported(format!("{kind:?} reduction on {d}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Reduce*

impl Reduce {
    /// Which axes are reduced, given the axes (`None` or empty: all, or none with
    /// `noop_with_empty_axes`).
    fn reduced_mask(&self, axes: Option<&[i64]>, rank: usize) -> Result<Vec<bool>, OpError> {
        match axes {
            Some(a) if !a.is_empty() => {
                let a = norm_axes(a, rank)?;
                Ok((0..rank).map(|d| a.contains(&d)).collect())
            }
            _ => Ok(vec![!self.noop_with_empty_axes; rank]),
        }
    }
}

fn eval_reduce(r: &Reduce, x: &Tensor, axes: Option<&[i64]>) -> Result<Tensor, OpError> {
    check_reduce_dtype(r.kind, x.dtype())?;
    let mask = r.reduced_mask(axes, x.rank())?;
    let groups = groups(x.shape(), &mask)?;
    let shape = reduced_shape(x.shape(), &mask, r.keepdims);
    let dtype = x.dtype();
    match num(x)? {
        Num::F(v) => {
            let out = groups.iter().map(|g| reduce_floats(r.kind, g.iter().map(|&i| v[i]))).collect();
            Ok(from_floats(dtype, &shape, out))
        }
        Num::I(v) => {
            if matches!(r.kind, ReduceKind::LogSum | ReduceKind::LogSumExp) {
                let out = groups.iter().map(|g| reduce_floats(r.kind, g.iter().map(|&i| v[i] as f64))).collect();
                return Ok(from_floats(dtype, &shape, out));
            }
            let out = groups.iter().map(|g| reduce_ints(r.kind, dtype, g.iter().map(|&i| v[i]))).collect();
            from_ints(dtype, &shape, out)
        }
        Num::B(v) => {
            let all = r.kind == ReduceKind::Min;
            let out = groups.iter().map(|g| if all { g.iter().all(|&i| v[i]) } else { g.iter().any(|&i| v[i]) });
            Ok(Tensor::from_vec(&shape, out.collect()))
        }
    }
}

/// One float reduction; over nothing it gives the identity (0, 1, ∓inf, ln 0 = -inf).
fn reduce_floats(kind: ReduceKind, xs: impl Iterator<Item = f64> + Clone) -> f64 {
    use ReduceKind::*;
    match kind {
        Sum => xs.sum(),
        Mean => {
            let n = xs.clone().count();
            xs.sum::<f64>() / n as f64
        }
        Prod => xs.product(),
        // NaN propagates, as with numpy's maximum/minimum.
        Max => xs.fold(f64::NEG_INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }),
        Min => xs.fold(f64::INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }),
        L1 => xs.map(f64::abs).sum(),
        L2 => xs.map(|v| v * v).sum::<f64>().sqrt(),
        SumSquare => xs.map(|v| v * v).sum(),
        LogSum => xs.sum::<f64>().ln(),
        LogSumExp => {
            // Shift by the largest finite value for stability (infinities pass through).
            let m = xs.clone().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
            let m = if m.is_finite() { m } else { 0.0 };
            xs.map(|v| (v - m).exp()).sum::<f64>().ln() + m
        }
    }
}

/// One exact integer reduction, wrapping like numpy's fixed-width arithmetic.
fn reduce_ints(kind: ReduceKind, dtype: DType, xs: impl Iterator<Item = i128> + Clone) -> i128 {
    use ReduceKind::*;
    let sum = |it: &mut dyn Iterator<Item = i128>| it.fold(0i128, i128::wrapping_add);
    match kind {
        Sum => sum(&mut xs.clone()),
        // numpy divides in floating point and truncates back to the integer type.
        Mean => {
            let n = xs.clone().count();
            let s = from_wrapped(dtype, sum(&mut xs.clone()));
            if n == 0 { 0 } else { (s as f64 / n as f64) as i128 }
        }
        Prod => xs.fold(1i128, i128::wrapping_mul),
        Max => xs.fold(int_bounds(dtype).0, i128::max),
        Min => xs.fold(int_bounds(dtype).1, i128::min),
        L1 => sum(&mut xs.map(i128::abs)),
        SumSquare => sum(&mut xs.map(|v| v.wrapping_mul(v))),
        // numpy squares in the element type (wrapping) and sums in 64 bits before the
        // square root; a negative sum (from wrapped squares) has no root: 0.
        L2 => {
            let s = sum(&mut xs.map(|v| from_wrapped(dtype, v.wrapping_mul(v))));
            let r = (s as f64).sqrt();
            if r.is_nan() { 0 } else { r as i128 }
        }
        LogSum | LogSumExp => unreachable!("computed in floating point by the caller"),
    }
}

/// The value a wrapped `i128` has once truncated to `dtype`.
fn from_wrapped(dtype: DType, v: i128) -> i128 {
    match dtype {
        DType::I8 => v as i8 as i128,
        DType::U8 => v as u8 as i128,
        DType::I16 => v as i16 as i128,
        DType::U16 => v as u16 as i128,
        DType::I32 => v as i32 as i128,
        DType::U32 => v as u32 as i128,
        DType::U64 => v as u64 as i128,
        _ => v as i64 as i128,
    }
}

// ---------------------------------------------------------------------------------
// ArgMax / ArgMin

/// A total order key for comparisons: NaN beats everything (numpy's argmax and argmin
/// both pick the first NaN).
fn better(max: bool, cand: f64, best: f64) -> bool {
    if best.is_nan() {
        return false;
    }
    if cand.is_nan() {
        return true;
    }
    if max { cand > best } else { cand < best }
}

fn eval_arg(x: &Tensor, max: bool, axis: i64, keepdims: bool, last: bool) -> Result<Tensor, OpError> {
    check_numeric("ArgMax/ArgMin", x.dtype())?;
    let a = norm_axis(axis, x.rank())?;
    let (outer, n, inner) = lanes(x.shape(), a);
    let v = as_f64_or_ordered(x)?;
    if n == 0 && outer * inner > 0 {
        return Err(OpError::invalid("ArgMax/ArgMin over an empty axis"));
    }
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let at = |i: usize| v[(o * n + i) * inner + j];
            let mut best = 0;
            for i in 1..n {
                let (c, b) = (at(i), at(best));
                if better(max, c, b) || (last && c == b) {
                    best = i;
                }
            }
            out.push(best as i64);
        }
    }
    let mask: Vec<bool> = (0..x.rank()).map(|d| d == a).collect();
    Ok(Tensor::from_vec(&reduced_shape(x.shape(), &mask, keepdims), out))
}

/// Values as `f64` for ordering; 64-bit integers beyond 2^53 would lose their order,
/// so those are mapped exactly through ranks.
fn as_f64_or_ordered(x: &Tensor) -> Result<Vec<f64>, OpError> {
    match num(x)? {
        Num::F(v) => Ok(v),
        Num::I(v) if v.iter().all(|&i| i.unsigned_abs() <= 1 << 53) => Ok(v.into_iter().map(|i| i as f64).collect()),
        Num::I(v) => {
            // Dense ranks preserve order and equality exactly.
            let mut sorted = v.clone();
            sorted.sort_unstable();
            sorted.dedup();
            Ok(v.iter().map(|i| sorted.binary_search(i).unwrap_or(0) as f64).collect())
        }
        Num::B(v) => Ok(v.into_iter().map(|b| b as u8 as f64).collect()),
    }
}

// ---------------------------------------------------------------------------------
// TopK

fn topk_axis_k(shape: &[usize], axis: i64, k: i64) -> Result<(usize, usize), OpError> {
    let a = norm_axis(axis, shape.len())?;
    if k < 0 || k as u64 > shape[a] as u64 {
        return Err(OpError::invalid(format!("TopK k={k} is outside 0..={} for axis {a}", shape[a])));
    }
    Ok((a, k as usize))
}

fn eval_topk(x: &Tensor, k: i64, axis: i64, largest: bool) -> Result<Vec<Tensor>, OpError> {
    check_numeric("TopK", x.dtype())?;
    let (a, k) = topk_axis_k(x.shape(), axis, k)?;
    let (outer, n, inner) = lanes(x.shape(), a);
    let key = as_f64_or_ordered(x)?;
    // Gather indices in output order, then take values with a dtype-generic gather.
    let mut picks = Vec::with_capacity(outer * k * inner);
    let mut idx_out = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for j in 0..inner {
            let at = |i: usize| key[(o * n + i) * inner + j];
            let mut order: Vec<usize> = (0..n).collect();
            // Stable sort: equal values keep the lower index first.
            order.sort_by(|&p, &q| {
                let c = at(p).total_cmp(&at(q));
                if largest { c.reverse() } else { c }
            });
            for (r, &i) in order.iter().take(k).enumerate() {
                idx_out[(o * k + r) * inner + j] = i as i64;
            }
        }
    }
    for o in 0..outer {
        for r in 0..k {
            for j in 0..inner {
                picks.push((o * n + idx_out[(o * k + r) * inner + j] as usize) * inner + j);
            }
        }
    }
    let mut shape = x.shape().to_vec();
    shape[a] = k;
    let values = take_flat(x, &picks, &shape);
    Ok(vec![values, Tensor::from_vec(&shape, idx_out)])
}

/// Elements of `x` at flat positions `picks`, shaped `shape` (any element type).
pub(super) fn take_flat(x: &Tensor, picks: &[usize], shape: &[usize]) -> Tensor {
    crate::map_array!(x, a => {
        let flat: Vec<_> = a.iter().cloned().collect();
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), picks.iter().map(|&p| flat[p]).collect())
            .expect("picks match the shape")
    })
}

// ---------------------------------------------------------------------------------
// CumSum / CumProd

fn eval_cum(x: &Tensor, axis: i64, prod: bool, exclusive: bool, reverse: bool) -> Result<Tensor, OpError> {
    check_numeric("CumSum/CumProd", x.dtype())?;
    if x.rank() == 0 {
        return Err(OpError::invalid("CumSum/CumProd input must have rank >= 1"));
    }
    let a = norm_axis(axis, x.rank())?;
    let (outer, n, inner) = lanes(x.shape(), a);
    let order: Vec<usize> = if reverse { (0..n).rev().collect() } else { (0..n).collect() };
    let dtype = x.dtype();
    match num(x)? {
        Num::F(v) => {
            let (id, op): (f64, fn(f64, f64) -> f64) = if prod { (1.0, |a, b| a * b) } else { (0.0, |a, b| a + b) };
            Ok(from_floats(dtype, x.shape(), scan(&v, outer, inner, &order, exclusive, id, op)))
        }
        Num::I(v) => {
            let (id, op): (i128, fn(i128, i128) -> i128) =
                if prod { (1, i128::wrapping_mul) } else { (0, i128::wrapping_add) };
            from_ints(dtype, x.shape(), scan(&v, outer, inner, &order, exclusive, id, op))
        }
        Num::B(_) => Err(OpError::unsupported("CumSum/CumProd on bool")),
    }
}

/// An inclusive or exclusive scan of every lane, visiting positions in `order`.
fn scan<T: Copy>(v: &[T], outer: usize, inner: usize, order: &[usize], exclusive: bool, id: T, op: fn(T, T) -> T) -> Vec<T> {
    let n = order.len();
    let mut out = v.to_vec();
    for o in 0..outer {
        for j in 0..inner {
            let mut acc = id;
            for &i in order {
                let p = (o * n + i) * inner + j;
                if exclusive {
                    out[p] = acc;
                    acc = op(acc, v[p]);
                } else {
                    acc = op(acc, v[p]);
                    out[p] = acc;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_reduce_middle_axis() {
        let g = groups(&[2, 3, 2], &[false, true, false]).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g[0], vec![0, 2, 4]);
        assert_eq!(g[3], vec![7, 9, 11]);
    }

    #[test]
    fn int_sum_wraps_like_numpy() {
        let x = Tensor::from_vec(&[2], vec![100i8, 100]);
        let r = Reduce { kind: ReduceKind::Sum, axes: AxesSource::Attr(None), keepdims: false, noop_with_empty_axes: false };
        assert_eq!(eval_reduce(&r, &x, None).unwrap(), Tensor::from_vec(&[], vec![-56i8]));
    }

    #[test]
    fn topk_ties_take_lower_index() {
        let x = Tensor::from_vec(&[4], vec![1.0f32, 3.0, 3.0, 2.0]);
        let out = eval_topk(&x, 2, -1, true).unwrap();
        assert_eq!(out[1], Tensor::from_vec(&[2], vec![1i64, 2]));
    }

    #[test]
    fn exclusive_reverse_cumsum() {
        let x = Tensor::from_vec(&[3], vec![1i32, 2, 3]);
        assert_eq!(eval_cum(&x, 0, false, true, true).unwrap(), Tensor::from_vec(&[3], vec![5i32, 3, 0]));
    }
}
