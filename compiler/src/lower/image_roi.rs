//! Lowering of `RoiAlign` (avg and max pooling, both coordinate modes) with a fixed
//! `sampling_ratio`.
//!
//! The rois are run-time data, so each roi's geometry is computed in the kernel. The
//! reference does that geometry in the rois' own precision (f32 for float32 rois: it
//! decides which samples fall outside), which KIR's typed arithmetic reproduces op for
//! op; the bilinear weights and the pooling are f64, as in the reference, and the
//! result is rounded to X's type once. A batch index outside `0..N` fails the run
//! (`Fail(6)`). `sampling_ratio = 0` makes the number of samples per bin depend on the
//! roi's size, a run-time loop bound KIR does not have: it is reported unsupported.

use super::linalg::{flit, input, output};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty, UnOp, Var};
use crate::ops::image::RoiAlign;

/// `EDGEC_ERR_INDEX_OUT_OF_RANGE`: a batch index outside the input.
const ERR_INDEX_OUT_OF_RANGE: i32 = 6;

pub(super) fn lower(op: &RoiAlign, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let (x, rois, idx) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let y = output(outs, 0)?;
    let (xt, ct) = (x.kty()?, rois.kty()?);
    if !xt.is_float() || !ct.is_float() || !idx.kty()?.is_int() {
        return Err(OpError::invalid("RoiAlign needs float X and rois, integer batch_indices"));
    }
    let (xs, rs) = (x.shape(), rois.shape());
    if xs.len() != 4 || rs.len() != 2 || rs[1] != 4 || idx.shape() != [rs[0]] || y.shape() != [rs[0], xs[1], op.out_h, op.out_w] {
        return Err(OpError::invalid(format!("RoiAlign: X {xs:?}, rois {rs:?}, batch_indices {:?} do not match", idx.shape())));
    }
    if op.sampling_ratio == 0 {
        return Err(OpError::unsupported(
            "RoiAlign with sampling_ratio 0 (the samples per bin depend on each roi's size at run time)",
        ));
    }
    let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let (oh, ow, g) = (op.out_h, op.out_w, op.sampling_ratio);
    let count = (g * g) as f64;
    let lit = |v: f64| flit(ct, v);
    let mut k = cx.kernel("");
    k.for_(rs[0], |k, r| {
        let bi = k.let_(Ty::Index, e::cast(Ty::Index, e::load(idx.buf, r.clone())));
        let bad = e::bin(BinOp::Or, e::bin(BinOp::Lt, e::var(bi), e::idx(0)), e::bin(BinOp::Ge, e::var(bi), e::idx(n as i64)));
        k.if_(bad, |k| k.fail(ERR_INDEX_OUT_OF_RANGE), |_| {});
        // The roi in input pixels: start (sw, sh), extent (rw, rh), bin size (bw, bh).
        let off = if op.half_pixel { 0.5 } else { 0.0 };
        let at = |k: &mut KernelBuilder, j: i64| {
            let v = e::load(rois.buf, iadd(imul(r.clone(), 4), e::idx(j)));
            k.let_(ct, e::sub(e::mul(v, lit(op.spatial_scale)), lit(off)))
        };
        let (sw, sh, ew, eh) = (at(k, 0), at(k, 1), at(k, 2), at(k, 3));
        let extent = |a: Var, b: Var| {
            let d = e::sub(e::var(a), e::var(b));
            if op.half_pixel { d } else { e::bin(BinOp::Max, d, lit(1.0)) }
        };
        let bh = k.let_(ct, e::div(extent(eh, sh), lit(oh as f64)));
        let bw = k.let_(ct, e::div(extent(ew, sw), lit(ow as f64)));
        k.for_(c, |k, ch| {
            let plane = imul(iadd(imul(e::var(bi), c as i64), ch.clone()), (h * w) as i64);
            k.for_(oh, |k, ph| {
                k.for_(ow, |k, pw| {
                    let acc = k.let_(Ty::F64, e::f64(if op.max_mode { f64::NEG_INFINITY } else { 0.0 }));
                    k.for_(g, |k, iy| {
                        k.for_(g, |k, ix| {
                            let sy = sample(k, ct, sh, bh, &ph, &iy, g);
                            let sx = sample(k, ct, sw, bw, &pw, &ix, g);
                            bilinear(k, op.max_mode, x.buf, xt, plane.clone(), (h, w), sy, sx, acc);
                        });
                    });
                    let v = if op.max_mode { e::var(acc) } else { e::div(e::var(acc), e::f64(count)) };
                    let v = if xt == Ty::F64 { v } else { e::cast(xt, v) };
                    let at = iadd(imul(iadd(imul(iadd(imul(r.clone(), c as i64), ch.clone()), oh as i64), ph.clone()), ow as i64), pw);
                    k.store(y.buf, at, v);
                });
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}

/// Sample coordinate `start + p * bin + (i + 0.5) * bin / g` along one axis, in the
/// rois' precision, rounded step by step as the reference (then widened to f64).
fn sample(k: &mut KernelBuilder, ct: Ty, start: Var, bin: Var, p: &Expr, i: &Expr, g: usize) -> Var {
    let corner = e::add(e::var(start), e::mul(e::cast(ct, p.clone()), e::var(bin)));
    let within = e::div(e::mul(e::add(e::cast(ct, i.clone()), flit(ct, 0.5)), e::var(bin)), flit(ct, g as f64));
    let v = e::add(corner, within);
    k.let_(Ty::F64, if ct == Ty::F64 { v } else { e::cast(Ty::F64, v) })
}

/// Adds the bilinear sample at `(y, x)` of the `h × w` plane at `plane` to `acc` (or
/// maxes its four weighted corners into it); outside `[-1, h] × [-1, w]` the corners
/// weigh 0. Index casts happen only inside that range.
#[allow(clippy::too_many_arguments)]
fn bilinear(k: &mut KernelBuilder, max: bool, x: crate::kir::BufId, xt: Ty, plane: Expr, (h, w): (usize, usize), y: Var, xv: Var, acc: Var) {
    let inside = [
        e::bin(BinOp::Ge, e::var(y), e::f64(-1.0)),
        e::bin(BinOp::Le, e::var(y), e::f64(h as f64)),
        e::bin(BinOp::Ge, e::var(xv), e::f64(-1.0)),
        e::bin(BinOp::Le, e::var(xv), e::f64(w as f64)),
    ]
    .into_iter()
    .reduce(|a, b| e::bin(BinOp::And, a, b))
    .expect("four conditions");
    k.if_(
        inside,
        |k| {
            // Per axis: low and high index (as f64) and the position's fraction.
            let axis = |k: &mut KernelBuilder, v: Var, len: usize| {
                let v = k.let_(Ty::F64, e::bin(BinOp::Max, e::var(v), e::f64(0.0)));
                let lo = k.let_(Ty::F64, e::un(UnOp::Trunc, e::var(v)));
                let edge = k.let_(Ty::Bool, e::bin(BinOp::Ge, e::var(lo), e::f64(len as f64 - 1.0)));
                let last = e::f64(len as f64 - 1.0);
                let l = k.let_(Ty::F64, e::select(e::var(edge), last.clone(), e::var(lo)));
                let hi = e::select(e::var(edge), last.clone(), e::add(e::var(lo), e::f64(1.0)));
                let hi = k.let_(Ty::F64, hi);
                let pos = e::select(e::var(edge), last, e::var(v));
                let frac = k.let_(Ty::F64, e::sub(pos, e::var(l)));
                (k.let_(Ty::Index, e::cast(Ty::Index, e::var(l))), k.let_(Ty::Index, e::cast(Ty::Index, e::var(hi))), frac)
            };
            let (yl, yh, ly) = axis(k, y, h);
            let (xl, xh, lx) = axis(k, xv, w);
            let hy = e::sub(e::f64(1.0), e::var(ly));
            let hx = e::sub(e::f64(1.0), e::var(lx));
            let corners = [
                (yl, xl, e::mul(hy.clone(), hx.clone())),
                (yl, xh, e::mul(hy, e::var(lx))),
                (yh, xl, e::mul(e::var(ly), hx)),
                (yh, xh, e::mul(e::var(ly), e::var(lx))),
            ];
            let mut sum: Option<Expr> = None;
            for (r, c, wt) in corners {
                let v = e::load(x, iadd(plane.clone(), iadd(imul(e::var(r), w as i64), e::var(c))));
                let v = if xt == Ty::F64 { v } else { e::cast(Ty::F64, v) };
                let t = e::mul(wt, v);
                if max {
                    k.set(acc, e::bin(BinOp::Max, e::var(acc), t));
                } else {
                    sum = Some(match sum {
                        None => t,
                        Some(s) => e::add(s, t),
                    });
                }
            }
            if let Some(s) = sum {
                k.set(acc, e::add(e::var(acc), s));
            }
        },
        |k| {
            // The four zero-weight corners count as 0 in a max.
            if max {
                k.set(acc, e::bin(BinOp::Max, e::var(acc), e::f64(0.0)));
            }
        },
    );
}
