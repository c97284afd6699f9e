//! Lowering of the reduce family: `Reduce*`, `ArgMax`/`ArgMin`, `TopK`, `CumSum`/`CumProd`.
//!
//! Every op here walks *groups* ([`Groups`], in `reduce_groups.rs`, shared with
//! `normalize.rs` and `signal.rs`): a kernel loops over the groups (the kept dims) and,
//! inside, over a group's elements (the reduced dims), accumulating in kernel
//! variables. Reductions that keep the innermost dim accumulate in memory instead, so
//! their inner loop is contiguous (`reduce_in_memory`).
//!
//! Numerics follow the reference evaluator (`ops/reduce.rs`) with the arithmetic a
//! backend runs: f32/f16/bf16 accumulate in `F32`, f64 in `F64`, integers wrap at the
//! width of their load type and narrow on store, which is exactly the element type's
//! modular result for sums and products.

#[path = "reduce_groups.rs"]
mod groups;

pub(super) use groups::{accumulate, and, flit, ilit, is_nan, konst_ints, loader, operand, opt_operand, or, single, Group, Groups};

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul, linear, strided, strides, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp, Var};
use crate::ops::reduce::{AxesSource, KSource, Reduce, ReduceKind, ReduceOp};
use crate::ops::util::{norm_axes, norm_axis};

pub fn lower(op: &ReduceOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let x = operand(ins, 0)?;
    match op {
        ReduceOp::Reduce(r) => {
            let axes = match &r.axes {
                AxesSource::Attr(a) => a.clone(),
                AxesSource::Input => opt_operand(ins, 1).map(|a| konst_ints(a, "axes")).transpose()?,
            };
            lower_reduce(r, cx, x, axes.as_deref(), operand(outs, 0)?)
        }
        ReduceOp::Arg { max, axis, select_last_index, .. } => {
            lower_arg(cx, x, operand(outs, 0)?, *max, norm_axis(*axis, x.shape().len())?, *select_last_index)
        }
        ReduceOp::TopK { k, axis, largest } => {
            let k = match k {
                KSource::Attr(k) => *k,
                KSource::Input => single(&konst_ints(operand(ins, 1)?, "K")?, "K")?,
            };
            lower_topk(cx, x, outs, k, *axis, *largest)
        }
        ReduceOp::Cum { prod, exclusive, reverse } => {
            lower_cum(cx, x, operand(ins, 1)?, operand(outs, 0)?, Scan { prod: *prod, exclusive: *exclusive, reverse: *reverse })
        }
    }
}

// ---------------------------------------------------------------------------------
// Integer helpers

/// `v` wrapped to the range of the integer `dtype` it was computed for in a wider
/// load type (`i8` in `I32`, `u32` in `I64` ...), as a store would narrow it.
fn wrap_to(dtype: DType, ty: Ty, v: Expr) -> Expr {
    let sext = |bits: i64| {
        let s = ilit(ty, bits);
        e::bin(BinOp::Shr, e::bin(BinOp::Shl, v.clone(), s.clone()), s)
    };
    match dtype {
        DType::I8 => sext(24),
        DType::I16 => sext(16),
        DType::U8 => e::bin(BinOp::And, v, ilit(ty, 0xff)),
        DType::U16 => e::bin(BinOp::And, v, ilit(ty, 0xffff)),
        DType::U32 => e::bin(BinOp::And, v, ilit(ty, 0xffff_ffff)),
        _ => v,
    }
}

/// A key that orders integers of `dtype` by signed comparison: u64 values live in
/// I64 with their top bit as sign, so flipping it restores their order.
fn int_key(dtype: DType, v: Expr) -> Expr {
    if dtype == DType::U64 { e::bin(BinOp::Xor, v, e::i64(i64::MIN)) } else { v }
}

/// The larger (`cmp` = Gt) or smaller (Lt) of two integers of `dtype`.
fn int_extreme(dtype: DType, cmp: BinOp, a: Expr, x: Expr) -> Expr {
    match (dtype, cmp) {
        (DType::U64, _) => e::select(e::bin(cmp, int_key(dtype, x.clone()), int_key(dtype, a.clone())), x, a),
        (_, BinOp::Gt) => e::bin(BinOp::Max, a, x),
        _ => e::bin(BinOp::Min, a, x),
    }
}

/// The value range of an integer type, as `ty` literals (for max/min over nothing).
fn int_bounds(dtype: DType, ty: Ty) -> (Expr, Expr) {
    let (lo, hi) = match dtype {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        DType::U64 => (0, -1),
        _ => (i64::MIN, i64::MAX),
    };
    (ilit(ty, lo), ilit(ty, hi))
}

// ---------------------------------------------------------------------------------
// Reduce*

/// How one reduction accumulates: `acc = step(acc, x)` from `init`, then `finish(acc)`.
struct Fold {
    acc_ty: Ty,
    init: Expr,
    step: Box<dyn Fn(Expr, Expr) -> Expr>,
    /// `None` when the accumulator is the result.
    finish: Option<Box<dyn Fn(Expr) -> Expr>>,
}

impl Fold {
    /// The reduction's value from the final accumulator.
    fn result(&self, acc: Expr) -> Expr {
        match &self.finish {
            Some(f) => f(acc),
            None => acc,
        }
    }
}

fn lower_reduce(r: &Reduce, cx: &mut LowerCx, x: &Operand, axes: Option<&[i64]>, y: &Operand) -> Result<(), OpError> {
    let rank = x.shape().len();
    let mask = match axes {
        Some(a) if !a.is_empty() => {
            let a = norm_axes(a, rank)?;
            (0..rank).map(|d| a.contains(&d)).collect()
        }
        _ => vec![!r.noop_with_empty_axes; rank],
    };
    let g = Groups::new(x.shape(), mask);
    let xt = x.kty()?;
    let mut k = cx.kernel("");
    if r.kind == ReduceKind::LogSumExp {
        log_sum_exp(&mut k, &g, x, y)?;
    } else {
        let fold = fold(r.kind, x.ty.dtype, xt, g.size())?;
        if g.size() > 1 && g.mask.last() == Some(&false) {
            reduce_in_memory(cx, &mut k, &g, &fold, x, y);
        } else {
            g.for_groups(&mut k, |k, grp| {
                let acc = k.let_(fold.acc_ty, fold.init.clone());
                g.for_elems(k, grp, |k, _, i| k.set(acc, (fold.step)(e::var(acc), e::load(x.buf, i))));
                k.store(y.buf, grp.out.clone(), fold.result(e::var(acc)));
            });
        }
    }
    cx.emit(k.finish());
    Ok(())
}

/// A reduction whose innermost dim is kept would walk memory with a stride if each
/// group were folded in turn. Instead the input is walked row-major and folded into
/// one accumulator per output element, so the inner loop is contiguous in both; the
/// accumulators are the output itself when it stores their type exactly, else scratch.
fn reduce_in_memory(cx: &mut LowerCx, k: &mut KernelBuilder, g: &Groups, fold: &Fold, x: &Operand, y: &Operand) {
    let acc_dtype = match fold.acc_ty {
        Ty::F32 => DType::F32,
        Ty::F64 => DType::F64,
        Ty::I32 => DType::I32,
        Ty::Bool => DType::Bool,
        Ty::I64 | Ty::Index => DType::I64,
    };
    let direct = y.ty.dtype == acc_dtype;
    let acc = if direct { y.buf } else { cx.scratch("acc", acc_dtype, vec![y.len()]) };
    // Output strides over the input's dims (0 along the reduced ones).
    let keep: Vec<usize> = g.shape.iter().zip(&g.mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
    let ost: Vec<usize> = strides(&keep).into_iter().zip(&g.mask).map(|(s, &m)| if m { 0 } else { s }).collect();
    k.for_(y.len(), |k, i| k.store(acc, i, fold.init.clone()));
    k.for_shape(&g.shape, |k, ix| {
        let o = strided(&ost, ix);
        k.store(acc, o.clone(), (fold.step)(e::load(acc, o), e::load(x.buf, linear(&g.shape, ix))));
    });
    if !direct || fold.finish.is_some() {
        k.for_(y.len(), |k, i| k.store(y.buf, i.clone(), fold.result(e::load(acc, i))));
    }
}

fn fold(kind: ReduceKind, dtype: DType, xt: Ty, n: usize) -> Result<Fold, OpError> {
    use ReduceKind::*;
    let f = |acc_ty, init, step: Box<dyn Fn(Expr, Expr) -> Expr>, finish: Option<Box<dyn Fn(Expr) -> Expr>>| {
        Ok(Fold { acc_ty, init, step, finish })
    };
    let sum = || -> Box<dyn Fn(Expr, Expr) -> Expr> { Box::new(e::add) };
    if xt == Ty::Bool {
        return match kind {
            Max => f(Ty::Bool, e::bool(false), Box::new(or), None),
            Min => f(Ty::Bool, e::bool(true), Box::new(and), None),
            _ => Err(OpError::unsupported(format!("{kind:?} reduction on bool"))),
        };
    }
    if xt.is_float() {
        let lit = move |v: f64| flit(xt, v);
        return match kind {
            Sum => f(xt, lit(0.0), sum(), None),
            Mean => f(xt, lit(0.0), sum(), Some(Box::new(move |a| e::div(a, lit(n as f64))))),
            Prod => f(xt, lit(1.0), Box::new(e::mul), None),
            Max => f(xt, lit(f64::NEG_INFINITY), Box::new(|a, x| e::bin(BinOp::Max, a, x)), None),
            Min => f(xt, lit(f64::INFINITY), Box::new(|a, x| e::bin(BinOp::Min, a, x)), None),
            L1 => f(xt, lit(0.0), Box::new(|a, x| e::add(a, e::un(UnOp::Abs, x))), None),
            L2 => f(xt, lit(0.0), Box::new(|a, x| e::fma(x.clone(), x, a)), Some(Box::new(|a| e::un(UnOp::Sqrt, a)))),
            SumSquare => f(xt, lit(0.0), Box::new(|a, x| e::fma(x.clone(), x, a)), None),
            LogSum => f(xt, lit(0.0), sum(), Some(Box::new(|a| e::un(UnOp::Log, a)))),
            LogSumExp => Err(OpError::invalid("LogSumExp takes two passes")),
        };
    }
    match kind {
        Sum => f(xt, ilit(xt, 0), sum(), None),
        // numpy divides the (wrapped) sum in floating point and truncates back.
        Mean => f(
            xt,
            ilit(xt, 0),
            sum(),
            Some(Box::new(move |a| {
                if n == 0 {
                    ilit(xt, 0)
                } else {
                    e::cast(xt, e::div(e::cast(Ty::F64, wrap_to(dtype, xt, a)), e::f64(n as f64)))
                }
            })),
        ),
        Prod => f(xt, ilit(xt, 1), Box::new(e::mul), None),
        Max => f(xt, int_bounds(dtype, xt).0, Box::new(move |a, x| int_extreme(dtype, BinOp::Gt, a, x)), None),
        Min => f(xt, int_bounds(dtype, xt).1, Box::new(move |a, x| int_extreme(dtype, BinOp::Lt, a, x)), None),
        L1 => f(xt, ilit(xt, 0), Box::new(|a, x| e::add(a, e::un(UnOp::Abs, x))), None),
        SumSquare => f(xt, ilit(xt, 0), Box::new(|a, x| e::add(a, e::mul(x.clone(), x))), None),
        // numpy squares in the element type (wrapping), sums in 64 bits, and takes the
        // root in floating point; a negative sum (from wrapped squares) gives 0.
        L2 => f(
            Ty::I64,
            e::i64(0),
            Box::new(move |a, x| e::add(a, e::cast(Ty::I64, wrap_to(dtype, xt, e::mul(x.clone(), x))))),
            Some(Box::new(move |a| {
                let r = e::un(UnOp::Sqrt, e::cast(Ty::F64, a));
                e::cast(xt, e::select(is_nan(r.clone()), e::f64(0.0), r))
            })),
        ),
        // Computed in f64 and truncated back, as the evaluator does.
        LogSum => f(
            Ty::F64,
            e::f64(0.0),
            Box::new(|a, x| e::add(a, e::cast(Ty::F64, x))),
            Some(Box::new(move |a| e::cast(xt, e::un(UnOp::Log, a)))),
        ),
        LogSumExp => Err(OpError::invalid("LogSumExp takes two passes")),
    }
}

/// `ln(sum(exp(x - m))) + m` with `m` the largest finite element (0 if none), so
/// infinities pass through and large values do not overflow. Integers run in F64.
fn log_sum_exp(k: &mut KernelBuilder, g: &Groups, x: &Operand, y: &Operand) -> Result<(), OpError> {
    let xt = x.kty()?;
    if xt == Ty::Bool {
        return Err(OpError::unsupported("LogSumExp reduction on bool"));
    }
    let ft = if xt.is_float() { xt } else { Ty::F64 };
    let load = loader(x, ft)?;
    g.for_groups(k, |k, grp| {
        let m = k.let_(ft, flit(ft, f64::NEG_INFINITY));
        g.for_elems(k, grp, |k, _, i| {
            let v = load(i);
            let finite = e::bin(BinOp::Eq, e::sub(v.clone(), v.clone()), flit(ft, 0.0));
            k.set(m, e::select(and(finite, e::bin(BinOp::Gt, v.clone(), e::var(m))), v, e::var(m)));
        });
        k.set(m, e::select(e::bin(BinOp::Eq, e::var(m), flit(ft, f64::NEG_INFINITY)), flit(ft, 0.0), e::var(m)));
        let s = g.sum(k, grp, ft, flit(ft, 0.0), |i| e::un(UnOp::Exp, e::sub(load(i), e::var(m))));
        let r = e::add(e::un(UnOp::Log, e::var(s)), e::var(m));
        k.store(y.buf, grp.out.clone(), if ft == xt { r } else { e::cast(xt, r) });
    });
    Ok(())
}

// ---------------------------------------------------------------------------------
// ArgMax / ArgMin

/// `cand` replaces `best` as the running extreme: NaN beats everything and the first
/// NaN wins (numpy); ties go to the later index only with `select_last_index`.
pub(super) fn better(ty: Ty, max: bool, last: bool, cand: Expr, best: Expr) -> Expr {
    let strict = e::bin(if max { BinOp::Gt } else { BinOp::Lt }, cand.clone(), best.clone());
    let b = if ty.is_float() {
        and(e::un(UnOp::Not, is_nan(best.clone())), or(is_nan(cand.clone()), strict))
    } else {
        strict
    };
    if last { or(b, e::bin(BinOp::Eq, cand, best)) } else { b }
}

/// Emits, inside a group loop, the search for the group's extreme along `axis`;
/// returns the Index variable holding its position.
#[allow(clippy::too_many_arguments)]
fn arg_extreme(k: &mut KernelBuilder, g: &Groups, grp: &Group, x: BufId, (dtype, xt): (DType, Ty), axis: usize, max: bool, last: bool) -> Var {
    let bi = k.let_(Ty::Index, e::idx(0));
    let bv = k.let_(xt, e::load(x, grp.base.clone()));
    g.for_elems(k, grp, |k, ix, i| {
        let c = k.let_(xt, e::load(x, i));
        k.if_(
            better(xt, max, last, int_key(dtype, e::var(c)), int_key(dtype, e::var(bv))),
            |k| {
                k.set(bi, ix[axis].clone());
                k.set(bv, e::var(c));
            },
            |_| {},
        );
    });
    bi
}

fn lower_arg(cx: &mut LowerCx, x: &Operand, y: &Operand, max: bool, axis: usize, last: bool) -> Result<(), OpError> {
    let xt = x.kty()?;
    if xt == Ty::Bool {
        return Err(OpError::unsupported("ArgMax/ArgMin on bool"));
    }
    if x.shape()[axis] == 0 {
        if y.is_empty() {
            return Ok(());
        }
        return Err(OpError::invalid("ArgMax/ArgMin over an empty axis"));
    }
    let g = Groups::along(x.shape(), axis);
    let mut k = cx.kernel("");
    g.for_groups(&mut k, |k, grp| {
        let bi = arg_extreme(k, &g, grp, x.buf, (x.ty.dtype, xt), axis, max, last);
        k.store(y.buf, grp.out.clone(), e::cast(Ty::I64, e::var(bi)));
    });
    cx.emit(k.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// TopK

/// An integer key ordering floats like `total_cmp` (the evaluator's sort order):
/// negative floats get their magnitude bits flipped so signed comparison of the bits
/// orders them; integers use [`int_key`].
fn sort_key(dtype: DType, ty: Ty, v: Expr) -> Expr {
    let (it, shift, mag) = match ty {
        Ty::F32 => (Ty::I32, 31, i32::MAX as i64),
        Ty::F64 => (Ty::I64, 63, i64::MAX),
        _ => return int_key(dtype, v),
    };
    let bits = Expr::Bitcast(it, Box::new(v));
    let sign = e::bin(BinOp::Shr, bits.clone(), ilit(it, shift));
    e::bin(BinOp::Xor, bits, e::bin(BinOp::And, sign, ilit(it, mag)))
}

/// Each element's rank in its lane (how many elements sort before it, ties broken by
/// index) is counted directly — O(n²) per lane, no scratch, a stable order — and the
/// elements ranked below `k` are written at their rank.
fn lower_topk(cx: &mut LowerCx, x: &Operand, outs: &[Option<Operand>], k: i64, axis: i64, largest: bool) -> Result<(), OpError> {
    let xt = x.kty()?;
    if xt == Ty::Bool {
        return Err(OpError::unsupported("TopK on bool"));
    }
    let a = norm_axis(axis, x.shape().len())?;
    let n = x.shape()[a];
    let kk = usize::try_from(k).ok().filter(|&kk| kk <= n).ok_or_else(|| OpError::invalid(format!("TopK k={k} is outside 0..={n}")))?;
    let (values, indices) = (opt_operand(outs, 0), opt_operand(outs, 1));
    let mut out_shape = x.shape().to_vec();
    out_shape[a] = kk;
    let ost = strides(&out_shape);
    let g = Groups::along(x.shape(), a);
    let key_ty = match xt {
        Ty::F32 => Ty::I32,
        Ty::F64 => Ty::I64,
        t => t,
    };
    let mut kb = cx.kernel("");
    g.for_groups(&mut kb, |kb, grp| {
        let out_base = strided(&ost, &grp.ix);
        g.for_elems(kb, grp, |kb, ix, i| {
            let v = kb.let_(xt, e::load(x.buf, i));
            let key = kb.let_(key_ty, sort_key(x.ty.dtype, xt, e::var(v)));
            let rank = kb.let_(Ty::Index, e::idx(0));
            g.for_elems(kb, grp, |kb, jx, j| {
                let kj = sort_key(x.ty.dtype, xt, e::load(x.buf, j));
                let before = e::bin(if largest { BinOp::Gt } else { BinOp::Lt }, kj.clone(), e::var(key));
                let tie = and(e::bin(BinOp::Eq, kj, e::var(key)), e::bin(BinOp::Lt, jx[a].clone(), ix[a].clone()));
                kb.set(rank, e::add(e::var(rank), e::select(or(before, tie), e::idx(1), e::idx(0))));
            });
            kb.if_(
                e::bin(BinOp::Lt, e::var(rank), e::idx(kk as i64)),
                |kb| {
                    let at = iadd(out_base.clone(), imul(e::var(rank), ost[a] as i64));
                    if let Some(vals) = values {
                        kb.store(vals.buf, at.clone(), e::var(v));
                    }
                    if let Some(idx) = indices {
                        kb.store(idx.buf, at, e::cast(Ty::I64, ix[a].clone()));
                    }
                },
                |_| {},
            );
        });
    });
    cx.emit(kb.finish());
    Ok(())
}

// ---------------------------------------------------------------------------------
// CumSum / CumProd

#[derive(Clone, Copy)]
struct Scan {
    prod: bool,
    exclusive: bool,
    reverse: bool,
}

/// The axis is an input but does not change the output shape, so it may come at run
/// time: then the kernel wraps and checks it and branches to one scan per axis.
fn lower_cum(cx: &mut LowerCx, x: &Operand, axis: &Operand, y: &Operand, scan: Scan) -> Result<(), OpError> {
    let xt = x.kty()?;
    if xt == Ty::Bool {
        return Err(OpError::unsupported("CumSum/CumProd on bool"));
    }
    let rank = x.shape().len();
    let mut k = cx.kernel("");
    if axis.konst.is_some() {
        let a = norm_axis(single(&konst_ints(axis, "axis")?, "axis")?, rank)?;
        scan_along(&mut k, x, y, xt, a, scan);
    } else {
        if axis.len() != 1 || !axis.kty()?.is_int() {
            return Err(OpError::invalid("CumSum/CumProd axis must be a single integer"));
        }
        let a = k.let_(Ty::I64, e::cast(Ty::I64, e::load(axis.buf, e::idx(0))));
        k.set(a, e::select(e::bin(BinOp::Lt, e::var(a), e::i64(0)), e::add(e::var(a), e::i64(rank as i64)), e::var(a)));
        let bad = or(e::bin(BinOp::Lt, e::var(a), e::i64(0)), e::bin(BinOp::Ge, e::var(a), e::i64(rank as i64)));
        k.if_(bad, |k| k.fail(6), |_| {});
        for d in 0..rank {
            k.if_(e::bin(BinOp::Eq, e::var(a), e::i64(d as i64)), |k| scan_along(k, x, y, xt, d, scan), |_| {});
        }
    }
    cx.emit(k.finish());
    Ok(())
}

/// The inclusive or exclusive scan of every lane along `axis`.
fn scan_along(k: &mut KernelBuilder, x: &Operand, y: &Operand, xt: Ty, axis: usize, scan: Scan) {
    let id = if xt.is_float() { flit(xt, if scan.prod { 1.0 } else { 0.0 }) } else { ilit(xt, if scan.prod { 1 } else { 0 }) };
    let n = x.shape()[axis];
    let stride = strides(x.shape())[axis] as i64;
    // Only the group loop is used: the scan walks the lane itself, possibly backwards.
    let g = Groups::along(x.shape(), axis);
    g.for_groups(k, |k, grp| {
        let acc = k.let_(xt, id.clone());
        k.for_(n, |k, i| {
            let pos = if scan.reverse { e::sub(e::idx(n as i64 - 1), i) } else { i };
            let at = iadd(grp.base.clone(), imul(pos, stride));
            let next = e::bin(if scan.prod { BinOp::Mul } else { BinOp::Add }, e::var(acc), e::load(x.buf, at.clone()));
            if scan.exclusive {
                k.store(y.buf, at, e::var(acc));
                k.set(acc, next);
            } else {
                k.set(acc, next);
                k.store(y.buf, at, e::var(acc));
            }
        });
    });
}

#[cfg(test)]
#[path = "reduce_conformance.rs"]
mod conformance;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kir::interp::{self, Val};

    /// Evaluates a scalar expression with the interpreter's arithmetic.
    fn eval(x: Expr) -> Val {
        use crate::kir::{BufKind, Program};
        let mut prog = Program::default();
        let out = prog.add_buffer("out", DType::I64, vec![1], BufKind::Output(0));
        let mut k = KernelBuilder::new("t");
        k.store(out, e::idx(0), x);
        prog.kernels.push(k.finish());
        let t = interp::run(&prog, &[]).expect("runs");
        Val::I64(t[0].to_i64_vec().unwrap()[0])
    }

    #[test]
    fn sort_key_orders_like_total_cmp() {
        let xs = [f32::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-30, 3.0, f32::INFINITY, f32::NAN];
        let keys: Vec<i64> = xs
            .iter()
            .map(|&v| match eval(e::cast(Ty::I64, sort_key(DType::F32, Ty::F32, e::f32(v)))) {
                Val::I64(k) => k,
                v => panic!("{v:?}"),
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }

    #[test]
    fn u64_extremes_compare_unsigned() {
        let big = e::i64(u64::MAX as i64);
        assert_eq!(eval(int_extreme(DType::U64, BinOp::Gt, e::i64(1), big.clone())), Val::I64(-1));
        assert_eq!(eval(int_extreme(DType::U64, BinOp::Lt, e::i64(1), big)), Val::I64(1));
    }

    #[test]
    fn wrap_to_narrows_like_a_store() {
        assert_eq!(eval(e::cast(Ty::I64, wrap_to(DType::I8, Ty::I32, e::i32(200)))), Val::I64(-56));
        assert_eq!(eval(wrap_to(DType::U32, Ty::I64, e::i64(-1))), Val::I64(0xffff_ffff));
    }
}
