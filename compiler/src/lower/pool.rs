//! Lowering of the pool family: MaxPool (with Indices), AveragePool, LpPool, the global
//! pools and MaxUnpool.
//!
//! Windowed pools are the conv loop nest without channels mixing: `(plane, output
//! position...)` outside, the kernel positions inside, with padding handled by bounds
//! conditions on each tap ([`Window`], shared with the conv lowering). Averages count
//! their divisor in the same loop (taps inside the input, or inside the padded extent
//! with `count_include_pad`), so no per-position table is needed.

use super::conv::{and_into, guarded, Window};
use super::linalg::{flit, input, output, zero};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, linear, strides, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty, UnOp};
use crate::ops::conv::{AutoPad, WindowAttrs};
use crate::ops::pool::{Pool, PoolOp};

pub fn lower(op: &PoolOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let y = output(outs, 0)?;
    match op {
        PoolOp::MaxPool(p) => lower_max(p, cx, x, y, outs.get(1).and_then(Option::as_ref)),
        PoolOp::AveragePool(p) => lower_avg(p, cx, x, y, None),
        PoolOp::LpPool(p) => lower_avg(p, cx, x, y, Some(p.p)),
        PoolOp::GlobalAveragePool => lower_global(cx, x, y, Global::Average),
        PoolOp::GlobalMaxPool => lower_global(cx, x, y, Global::Max),
        PoolOp::GlobalLpPool { p } => lower_global(cx, x, y, Global::Lp(*p)),
        PoolOp::MaxUnpool(a) => lower_max_unpool(a, cx, x, input(ins, 1)?, y),
    }
}

/// `(planes, spatial input shape)` of `[N, C, spatial...]`.
fn planes(x: &Operand) -> Result<(usize, &[usize]), OpError> {
    match x.shape() {
        [n, c, sp @ ..] if !sp.is_empty() => Ok((n * c, sp)),
        s => Err(OpError::invalid(format!("pool input must be [N, C, spatial...], got {s:?}"))),
    }
}

/// The pool window over the output grid: explicit pads, or the auto_pad rule's. `x`
/// is the spatial input shape, `y` the whole output shape.
fn window(a: &WindowAttrs, x: &[usize], y: &[usize]) -> Result<Window, OpError> {
    let n = x.len();
    let Some(y) = y.get(2..).filter(|g| g.len() == n) else {
        return Err(OpError::invalid(format!("pool output {y:?} does not fit spatial input {x:?}")));
    };
    let mut g = a.geometry(a.kernel(n, None)?)?;
    for i in 0..n {
        let eff = (g.kernel[i] - 1) * g.dilations[i] + 1;
        match a.auto_pad {
            AutoPad::NotSet => {}
            AutoPad::Valid => g.pad_head[i] = 0,
            AutoPad::SameUpper | AutoPad::SameLower => {
                let need = ((y[i].max(1) - 1) * g.strides[i] + eff).saturating_sub(x[i]);
                g.pad_head[i] = if a.auto_pad == AutoPad::SameUpper { need / 2 } else { need - need / 2 };
                g.pad_tail[i] = need - g.pad_head[i];
            }
        }
    }
    g.grid = y.to_vec();
    Ok(Window { g, target: x.to_vec() })
}

/// The loop nest shared by the windowed pools: `per_output(kb, plane, o)` runs once per
/// output element of every plane and returns the value stored there.
fn for_windows(
    kb: &mut KernelBuilder,
    planes: usize,
    grid: &[usize],
    y: &Operand,
    mut per_output: impl FnMut(&mut KernelBuilder, &Expr, &[Expr]) -> Expr,
) {
    let sp_out: usize = grid.iter().product();
    kb.for_(planes, |kb, plane| {
        kb.for_shape(grid, |kb, o| {
            let v = per_output(kb, &plane, o);
            kb.store(y.buf, iadd(imul(plane.clone(), sp_out as i64), linear(grid, o)), v);
        });
    });
}

/// MaxPool: the first maximum of each window (NaN skipped), and optionally its flat
/// index in X (row-major, or column-major over the spatial axes with storage_order 1).
/// A window holding only padding gives 0 and index -1, as the reference does.
fn lower_max(p: &Pool, cx: &mut LowerCx, x: &Operand, y: &Operand, ind: Option<&Operand>) -> Result<(), OpError> {
    let ty = x.kty()?;
    let (planes, sp) = planes(x)?;
    let win = window(&p.window, sp, y.shape())?;
    let sp_in: usize = sp.iter().product();
    let col: Vec<usize> = sp
        .iter()
        .scan(1, |acc, &d| {
            let s = *acc;
            *acc *= d;
            Some(s)
        })
        .collect();
    let kernel = win.g.kernel.clone();
    let sp_out: usize = win.g.grid.iter().product();
    let mut kb = cx.kernel("");
    for_windows(&mut kb, planes, &win.g.grid.clone(), y, |kb, plane, o| {
        let best = kb.let_(ty, zero(ty));
        let found = kb.let_(Ty::Bool, e::bool(false));
        let at = kb.let_(Ty::I64, e::i64(-1));
        kb.for_shape(&kernel, |kb, k| {
            let (pos, cond) = win.positions(o, k);
            let flat = if p.storage_order == 0 { linear(sp, &pos) } else { crate::kir::build::strided(&col, &pos) };
            let off = iadd(imul(plane.clone(), sp_in as i64), linear(sp, &pos));
            let flat = iadd(imul(plane.clone(), sp_in as i64), flat);
            guarded(kb, cond, |kb| {
                let v = kb.let_(ty, e::load(x.buf, off));
                let first_or_greater =
                    e::bin(BinOp::Or, e::un(UnOp::Not, e::var(found)), e::bin(BinOp::Gt, e::var(v), e::var(best)));
                // NaN never wins (`v == v` is false only for NaN); integers need no test.
                let better = if ty.is_float() {
                    e::bin(BinOp::And, e::bin(BinOp::Eq, e::var(v), e::var(v)), first_or_greater)
                } else {
                    first_or_greater
                };
                kb.if_(
                    better,
                    |kb| {
                        kb.set(best, e::var(v));
                        kb.set(found, e::bool(true));
                        kb.set(at, e::cast(Ty::I64, flat));
                    },
                    |_| {},
                );
            });
        });
        if let Some(ind) = ind {
            let i = iadd(imul(plane.clone(), sp_out as i64), linear(&win.g.grid, o));
            kb.store(ind.buf, i, e::var(at));
        }
        e::var(best)
    });
    cx.emit(kb.finish());
    Ok(())
}

/// AveragePool (`lp` None) or LpPool. The divisor is the number of taps inside the
/// input, or with `count_include_pad` inside the padded extent; LpPool follows the
/// reference: `(sum |x|^p * kernel_size / padded_count)^(1/p)`.
fn lower_avg(p: &Pool, cx: &mut LowerCx, x: &Operand, y: &Operand, lp: Option<i64>) -> Result<(), OpError> {
    let ty = x.kty()?;
    if !ty.is_float() {
        return Err(OpError::unsupported(format!("average pooling of {}", x.ty.dtype)));
    }
    let (planes, sp) = planes(x)?;
    let win = window(&p.window, sp, y.shape())?;
    let sp_in: usize = sp.iter().product();
    let kernel = win.g.kernel.clone();
    let kn: usize = kernel.iter().product();
    let need_padded = lp.is_some() || p.count_include_pad;
    let one = flit(ty, 1.0);
    let mut kb = cx.kernel("");
    for_windows(&mut kb, planes, &win.g.grid.clone(), y, |kb, plane, o| {
        let sum = kb.let_(ty, zero(ty));
        let count = kb.let_(ty, zero(ty));
        let padded = kb.let_(ty, zero(ty));
        kb.for_shape(&kernel, |kb, k| {
            let (pos, cond) = win.positions(o, k);
            if need_padded {
                // Inside the padded extent: below `len + pad_tail` (never below -pad_head).
                let mut inside = None;
                for (a, q) in pos.iter().enumerate() {
                    let end = sp[a] + win.g.pad_tail[a];
                    let max = (win.g.grid[a].max(1) - 1) * win.g.strides[a] + (kernel[a] - 1) * win.g.dilations[a];
                    if max >= end + win.g.pad_head[a] {
                        and_into(&mut inside, e::bin(BinOp::Lt, q.clone(), e::idx(end as i64)));
                    }
                }
                guarded(kb, inside, |kb| kb.set(padded, e::add(e::var(padded), one.clone())));
            }
            let v = e::load(x.buf, iadd(imul(plane.clone(), sp_in as i64), linear(sp, &pos)));
            guarded(kb, cond, |kb| {
                let t = kb.let_(ty, v);
                let next = match lp {
                    None => e::add(e::var(sum), e::var(t)),
                    Some(1) => e::add(e::var(sum), e::un(UnOp::Abs, e::var(t))),
                    Some(2) => e::fma(e::var(t), e::var(t), e::var(sum)),
                    Some(q) => e::add(e::var(sum), e::bin(BinOp::Pow, e::un(UnOp::Abs, e::var(t)), flit(ty, q as f64))),
                };
                kb.set(sum, next);
                if !need_padded {
                    kb.set(count, e::add(e::var(count), one.clone()));
                }
            });
        });
        match lp {
            None => e::div(e::var(sum), e::var(if need_padded { padded } else { count })),
            Some(q) => {
                let mean = e::div(e::mul(e::var(sum), flit(ty, kn as f64)), e::var(padded));
                root(ty, mean, q)
            }
        }
    });
    cx.emit(kb.finish());
    Ok(())
}

/// `v^(1/p)`, with the square root spelled out.
fn root(ty: Ty, v: Expr, p: i64) -> Expr {
    match p {
        1 => v,
        2 => e::un(UnOp::Sqrt, v),
        _ => e::bin(BinOp::Pow, v, flit(ty, 1.0 / p as f64)),
    }
}

enum Global {
    Average,
    Max,
    Lp(i64),
}

/// Global pools: one reduction per `[n, c]` plane, the inner loop walking the plane.
fn lower_global(cx: &mut LowerCx, x: &Operand, y: &Operand, kind: Global) -> Result<(), OpError> {
    let ty = x.kty()?;
    if !ty.is_float() && !matches!(kind, Global::Max) {
        return Err(OpError::unsupported(format!("global pooling of {}", x.ty.dtype)));
    }
    let (planes, sp) = planes(x)?;
    let len: usize = sp.iter().product();
    let init = match (&kind, ty) {
        (Global::Max, Ty::F32) => e::f32(f32::NEG_INFINITY),
        (Global::Max, Ty::F64) => e::f64(f64::NEG_INFINITY),
        (Global::Max, _) => e::i32(i32::MIN),
        _ => zero(ty),
    };
    let mut kb = cx.kernel("");
    kb.for_(planes, |kb, plane| {
        let acc = kb.let_(ty, init);
        kb.for_(len, |kb, i| {
            let v = e::load(x.buf, iadd(imul(plane.clone(), len as i64), i));
            let next = match kind {
                Global::Average => e::add(e::var(acc), v),
                // `v > acc` is false for NaN: NaNs are skipped, as in the reference.
                Global::Max => {
                    let t = kb.let_(ty, v);
                    e::select(e::bin(BinOp::Gt, e::var(t), e::var(acc)), e::var(t), e::var(acc))
                }
                Global::Lp(2) => {
                    let t = kb.let_(ty, v);
                    e::fma(e::var(t), e::var(t), e::var(acc))
                }
                Global::Lp(p) => e::add(e::var(acc), e::bin(BinOp::Pow, e::un(UnOp::Abs, v), flit(ty, p as f64))),
            };
            kb.set(acc, next);
        });
        let v = match kind {
            Global::Average => e::div(e::var(acc), flit(ty, len as f64)),
            Global::Max => e::var(acc),
            Global::Lp(p) => root(ty, e::var(acc), p),
        };
        kb.store(y.buf, plane, v);
    });
    cx.emit(kb.finish());
    Ok(())
}

/// MaxUnpool: zeros, then each X value at its index (bounds-checked: Fail(6)) in the
/// tensor of the inferred shape `(in - 1) * stride - pads + kernel`, which is placed at
/// the origin of the requested output shape (elements outside it are dropped).
fn lower_max_unpool(a: &WindowAttrs, cx: &mut LowerCx, x: &Operand, ind: &Operand, y: &Operand) -> Result<(), OpError> {
    let (_, sp) = planes(x)?;
    let g = a.geometry(a.kernel(sp.len(), None)?)?;
    let mut inferred = x.shape()[..2].to_vec();
    for (i, &len) in sp.iter().enumerate() {
        let full = (len.max(1) - 1) * g.strides[i] + g.kernel[i];
        inferred.push(
            full.checked_sub(g.pad_head[i] + g.pad_tail[i])
                .ok_or_else(|| OpError::invalid("MaxUnpool pads exceed the output"))?,
        );
    }
    if ind.len() != x.len() || inferred.len() != y.shape().len() || Ty::of_storage(ind.ty.dtype) != Some(Ty::I64) {
        return Err(OpError::invalid("MaxUnpool indices or output shape do not match X"));
    }
    let total: usize = inferred.iter().product();
    let same = inferred == y.shape();
    let ty = x.kty()?;
    let mut kb = cx.kernel("");
    kb.for_(y.len(), |kb, i| kb.store(y.buf, i, zero(ty)));
    kb.for_(x.len(), |kb, i| {
        let at = kb.let_(Ty::Index, e::cast(Ty::Index, e::load(ind.buf, i.clone())));
        let bad = e::bin(
            BinOp::Or,
            e::bin(BinOp::Lt, e::var(at), e::idx(0)),
            e::bin(BinOp::Ge, e::var(at), e::idx(total as i64)),
        );
        kb.if_(bad, |kb| kb.fail(6), |_| {});
        let v = e::load(x.buf, i);
        if same {
            kb.store(y.buf, e::var(at), v);
        } else {
            let st = strides(&inferred);
            let coords: Vec<Expr> = st
                .iter()
                .zip(&inferred)
                .map(|(&s, &d)| e::bin(BinOp::Rem, e::div(e::var(at), e::idx(s as i64)), e::idx(d as i64)))
                .collect();
            let mut inside = None;
            for (c, &d) in coords.iter().zip(y.shape()) {
                and_into(&mut inside, e::bin(BinOp::Lt, c.clone(), e::idx(d as i64)));
            }
            let dst = linear(y.shape(), &coords);
            guarded(kb, inside, |kb| kb.store(y.buf, dst, v));
        }
    });
    cx.emit(kb.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{DType, Tensor, TypeInfo};

    #[test]
    fn max_pool_skips_nan_and_reports_indices() {
        let window = WindowAttrs {
            auto_pad: AutoPad::NotSet,
            kernel_shape: Some(vec![1, 2]),
            strides: vec![1, 2],
            dilations: vec![],
            pads: vec![],
            group: 1,
        };
        let op = PoolOp::MaxPool(Pool { window, ceil_mode: false, count_include_pad: false, storage_order: 0, p: 2 });
        let ins = [Tensor::from_vec(&[1, 1, 1, 4], vec![1.0f32, f32::NAN, 3.0, 3.0])];
        let outs = [TypeInfo::new(DType::F32, vec![1, 1, 1, 2]), TypeInfo::new(DType::I64, vec![1, 1, 1, 2])];
        let y = run_op(&ins, &outs, |cx, i, o| lower(&op, cx, i, o));
        assert_eq!(y[0], Tensor::from_vec(&[1, 1, 1, 2], vec![1.0f32, 3.0]));
        assert_eq!(y[1], Tensor::from_vec(&[1, 1, 1, 2], vec![0i64, 2]));
    }
}
