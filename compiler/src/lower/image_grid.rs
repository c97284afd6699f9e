//! Lowering of `GridSample` (2-D and 3-D; nearest, linear and cubic; zeros, border and
//! reflection padding).
//!
//! The grid is run-time data, so every tap is computed in the kernel, step for step as
//! the reference evaluator does: the normalised coordinate is denormalised in f32 (the
//! reference stores it so), everything after that — rounding, padding, reflection,
//! weights and the sum over taps — is f64, and the result is rounded to X's type once.
//!
//! Loops run `(batch, output point)` outside, where each spatial axis's candidate
//! positions, validity and weights are computed once, then channels inside. A tap's
//! read index is built from its position only where valid (a float `Select` to 0
//! before the float → index cast, so NaN or far-out coordinates never reach a cast),
//! and its term is `Select(valid, w * x, 0)` (the load is in bounds either way).

use super::linalg::{flit, input, output};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, linear, strides, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty, UnOp, Var};
use crate::ops::image::{GridMode, GridPadding, GridSample};

pub(super) fn lower(op: &GridSample, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let (x, grid) = (input(ins, 0)?, input(ins, 1)?);
    let y = output(outs, 0)?;
    let (xt, gt) = (x.kty()?, grid.kty()?);
    if !xt.is_float() || !gt.is_float() {
        return Err(OpError::invalid("GridSample X and grid must be float tensors"));
    }
    let xs = x.shape();
    let nd = xs.len().saturating_sub(2);
    let gs = grid.shape();
    if !(nd == 2 || nd == 3) || gs.len() != xs.len() || gs[0] != xs[0] || gs[nd + 1] != nd || y.shape()[2..] != gs[1..=nd] {
        return Err(OpError::invalid(format!("GridSample: X {xs:?} and grid {gs:?} do not match")));
    }
    let (n, c) = (xs[0], xs[1]);
    let dims = xs[2..].to_vec();
    let out_sp = gs[1..=nd].to_vec();
    let points: usize = out_sp.iter().product();
    let plane: usize = dims.iter().product();
    let st = strides(&dims);
    let mut k = cx.kernel("");
    k.for_(n, |k, b| {
        k.for_shape(&out_sp, |k, p| {
            let pt = iadd(imul(b.clone(), points as i64), linear(&out_sp, p));
            // Per spatial axis d: candidate (position var, valid var, weight var).
            let per_dim: Vec<Vec<(Var, Var, Var)>> = (0..nd)
                .map(|d| {
                    let g = e::load(grid.buf, iadd(imul(pt.clone(), nd as i64), e::idx((nd - 1 - d) as i64)));
                    let g = if gt == Ty::F32 { g } else { e::cast(Ty::F32, g) };
                    axis_taps(op, k, g, dims[d])
                })
                .collect();
            // Cartesian product of the axes' candidates: outermost axis first, as the reference sums.
            let mut taps: Vec<(Expr, Expr, Expr)> = vec![(e::bool(true), e::idx(0), e::f64(1.0))];
            for (d, cands) in per_dim.iter().enumerate() {
                let stride = st[d] as i64;
                taps = taps
                    .into_iter()
                    .flat_map(|(ok, at, w)| {
                        cands.iter().map(move |&(pos, valid, cw)| {
                            let safe = e::select(e::var(valid), e::var(pos), e::f64(0.0));
                            let at = iadd(at.clone(), imul(e::cast(Ty::Index, safe), stride));
                            (e::bin(BinOp::And, ok.clone(), e::var(valid)), at, e::mul(w.clone(), e::var(cw)))
                        })
                    })
                    .collect();
            }
            let taps: Vec<(Var, Var, Var)> = taps
                .into_iter()
                .map(|(ok, at, w)| (k.let_(Ty::Bool, ok), k.let_(Ty::Index, at), k.let_(Ty::F64, w)))
                .collect();
            k.for_(c, |k, ch| {
                let bc = iadd(imul(b.clone(), c as i64), ch);
                let base = imul(bc.clone(), plane as i64);
                let acc = k.let_(Ty::F64, e::f64(0.0));
                for &(ok, at, w) in &taps {
                    let v = e::load(x.buf, iadd(base.clone(), e::var(at)));
                    let v = if xt == Ty::F64 { v } else { e::cast(Ty::F64, v) };
                    let term = e::select(e::var(ok), e::mul(e::var(w), v), e::f64(0.0));
                    k.set(acc, e::add(e::var(acc), term));
                }
                let out = if xt == Ty::F64 { e::var(acc) } else { e::cast(xt, e::var(acc)) };
                k.store(y.buf, iadd(imul(bc, points as i64), linear(&out_sp, p)), out);
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}

/// One spatial axis of length `len`: the candidate positions (integer-valued f64 after
/// padding), whether each reads the input, and its weight, from normalised coordinate `g` (F32).
fn axis_taps(op: &GridSample, k: &mut KernelBuilder, g: Expr, len: usize) -> Vec<(Var, Var, Var)> {
    let l32 = e::f32(len as f32);
    let one32 = e::f32(1.0);
    // Denormalise in f32, as the reference does.
    let v32 = if op.align_corners {
        e::mul(e::div(e::add(g, one32.clone()), e::f32(2.0)), e::sub(l32, one32))
    } else {
        e::div(e::sub(e::mul(e::add(g, one32.clone()), l32), one32), e::f32(2.0))
    };
    let v = k.let_(Ty::F64, e::cast(Ty::F64, v32));
    if op.mode == GridMode::Nearest {
        k.set(v, e::un(UnOp::Round, e::var(v)));
    }
    let (lo, hi) = borders(op, len);
    let last = len as f64 - 1.0;
    match op.padding {
        GridPadding::Zeros => {}
        // Only coordinates outside [lo, hi] are clamped, as in the reference.
        GridPadding::Border => {
            let out = e::bin(BinOp::Or, e::bin(BinOp::Lt, e::var(v), e::f64(lo)), e::bin(BinOp::Gt, e::var(v), e::f64(hi)));
            k.set(v, e::select(out, clamp64(e::var(v), 0.0, last.max(0.0)), e::var(v)));
        }
        GridPadding::Reflection => {
            let r = reflect(k, e::var(v), lo, hi);
            k.set(v, r);
        }
    }
    // Integer positions and weights of the mode.
    let cands: Vec<(Expr, Expr)> = match op.mode {
        GridMode::Nearest => vec![(e::un(UnOp::Trunc, e::var(v)), e::f64(1.0))],
        GridMode::Linear => {
            let x0 = k.let_(Ty::F64, e::un(UnOp::Floor, e::var(v)));
            let t = k.let_(Ty::F64, e::sub(e::var(v), e::var(x0)));
            vec![
                (e::var(x0), e::sub(e::f64(1.0), e::var(t))),
                (e::add(e::var(x0), e::f64(1.0)), e::var(t)),
            ]
        }
        GridMode::Cubic => {
            let x0 = k.let_(Ty::F64, e::un(UnOp::Floor, e::var(v)));
            let t = k.let_(Ty::F64, e::un(UnOp::Abs, e::sub(e::var(v), e::var(x0))));
            cubic_coeffs(e::var(t))
                .into_iter()
                .enumerate()
                .map(|(j, w)| (e::add(e::var(x0), e::f64(j as f64 - 1.0)), w))
                .collect()
        }
    };
    cands
        .into_iter()
        .map(|(i, w)| {
            let i = k.let_(Ty::F64, i);
            // The padding's pixel for integer position i.
            let pix = match op.padding {
                GridPadding::Zeros => e::var(i),
                GridPadding::Border => clamp64(e::var(i), 0.0, last),
                GridPadding::Reflection => {
                    let r = reflect(k, e::var(i), lo, hi);
                    e::un(UnOp::Trunc, r)
                }
            };
            let pix = k.let_(Ty::F64, pix);
            let valid = e::bin(
                BinOp::And,
                e::bin(BinOp::Ge, e::var(pix), e::f64(0.0)),
                e::bin(BinOp::Le, e::var(pix), e::f64(last)),
            );
            (pix, k.let_(Ty::Bool, valid), k.let_(Ty::F64, w))
        })
        .collect()
}

/// The valid coordinate range before padding applies.
fn borders(op: &GridSample, len: usize) -> (f64, f64) {
    if op.align_corners {
        (0.0, len as f64 - 1.0)
    } else {
        (-0.5, len as f64 - 0.5)
    }
}

fn clamp64(v: Expr, lo: f64, hi: f64) -> Expr {
    e::bin(BinOp::Min, e::bin(BinOp::Max, v, flit(Ty::F64, lo)), flit(Ty::F64, hi))
}

/// Reflects `x` at the borders until it lies within `[lo, hi]` (the reference's
/// `reflect`, branch-free: both sides of each select are plain arithmetic).
fn reflect(k: &mut KernelBuilder, x: Expr, lo: f64, hi: f64) -> Expr {
    let range = hi - lo;
    if range <= 0.0 {
        return e::f64(lo);
    }
    let x = k.let_(Ty::F64, x);
    let fold = |k: &mut KernelBuilder, dx: Expr, even_from: f64, odd_from: f64, even_sign: f64| {
        let dx = k.let_(Ty::F64, dx);
        let n = k.let_(Ty::F64, e::un(UnOp::Trunc, e::div(e::var(dx), e::f64(range))));
        let r = k.let_(Ty::F64, e::sub(e::var(dx), e::mul(e::var(n), e::f64(range))));
        let half = e::mul(e::var(n), e::f64(0.5));
        let even = e::bin(BinOp::Eq, half.clone(), e::un(UnOp::Trunc, half));
        let towards = |from: f64, sign: f64| e::add(e::f64(from), e::mul(e::f64(sign), e::var(r)));
        e::select(even, towards(even_from, even_sign), towards(odd_from, -even_sign))
    };
    let below = fold(k, e::sub(e::f64(lo), e::var(x)), lo, hi, 1.0);
    let below = k.let_(Ty::F64, below);
    let above = fold(k, e::sub(e::var(x), e::f64(hi)), hi, lo, -1.0);
    let above = k.let_(Ty::F64, above);
    e::select(
        e::bin(BinOp::Lt, e::var(x), e::f64(lo)),
        e::var(below),
        e::select(e::bin(BinOp::Gt, e::var(x), e::f64(hi)), e::var(above), e::var(x)),
    )
}

/// Keys cubic weights (a = -0.75) of the four neighbours at fractional offset `t` >= 0,
/// the reference's expressions term for term.
fn cubic_coeffs(t: Expr) -> Vec<Expr> {
    let a = || e::f64(-0.75);
    let c = |v: f64| e::f64(v);
    let outer = |x: Expr| {
        // ((a * x - 5a) * x + 8a) * x - 4a
        e::sub(e::mul(e::add(e::mul(e::sub(e::mul(a(), x.clone()), c(-3.75)), x.clone()), c(-6.0)), x), c(-3.0))
    };
    let inner = |x: Expr| {
        // ((a + 2) * x - (a + 3)) * x * x + 1
        e::add(e::mul(e::mul(e::sub(e::mul(c(1.25), x.clone()), c(2.25)), x.clone()), x), c(1.0))
    };
    vec![
        outer(e::add(t.clone(), c(1.0))),
        inner(t.clone()),
        inner(e::sub(c(1.0), t.clone())),
        outer(e::sub(c(2.0), t)),
    ]
}
