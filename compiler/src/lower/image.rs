//! Lowering of the image family to KIR: `Resize`/`Upsample` (`image_resize.rs`),
//! `GridSample` (`image_grid.rs`), `RoiAlign` (`image_roi.rs`) and `AffineGrid` (here).
//! `NonMaxSuppression` has a data-dependent output length and stays unsupported.
//! See docs/lowering-image.md.

use std::sync::Arc;

use super::linalg::{input, output};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::{iadd, imul, linear};
use crate::kir::{e, BufKind, Expr, Ty};
use crate::ops::image::{AffineGrid, ImageOp};

pub fn lower(op: &ImageOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    match op {
        ImageOp::Resize(o) => super::image_resize::lower(o, cx, ins, outs),
        ImageOp::GridSample(o) => super::image_grid::lower(o, cx, ins, outs),
        ImageOp::AffineGrid(o) => lower_affine_grid(o, cx, ins, outs),
        ImageOp::RoiAlign(o) => super::image_roi::lower(o, cx, ins, outs),
        ImageOp::NonMaxSuppression(_) => {
            Err(OpError::unsupported("NonMaxSuppression: the number of selected boxes is only known at run time"))
        }
    }
}

/// AffineGrid: `y[b, p..., r] = sum_k theta[b, r, k] * h[k]` with the homogeneous base
/// point `h = (x, y[, z], 1)` of grid position `p`. The base coordinates depend only on
/// the (static) output size, so they are a constant table per spatial axis, computed
/// as the reference does (in f64, then rounded to theta's type).
fn lower_affine_grid(op: &AffineGrid, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let theta = input(ins, 0)?;
    let y = output(outs, 0)?;
    let ty = theta.kty()?;
    if !ty.is_float() {
        return Err(OpError::invalid("AffineGrid theta must be a float tensor"));
    }
    let shape = y.shape();
    let nd = shape.len().saturating_sub(2);
    if !(nd == 2 || nd == 3) || shape[nd + 1] != nd || theta.shape() != [shape[0], nd, nd + 1] {
        return Err(OpError::invalid(format!("AffineGrid: theta {:?} does not fit output {shape:?}", theta.shape())));
    }
    let sp = &shape[1..=nd];
    // Base coordinates of every spatial axis, concatenated; `start[d]` is axis d's offset.
    let mut base = Vec::new();
    let mut start = Vec::with_capacity(nd);
    for &len in sp {
        start.push(base.len());
        let l = len as f64;
        base.extend((0..len).map(|i| {
            let i = i as f64;
            match (op.align_corners, len) {
                (true, 1) => -1.0,
                (true, _) => -1.0 + i * 2.0 / (l - 1.0),
                (false, _) => -1.0 + 1.0 / l + i * 2.0 / l,
            }
        }));
    }
    let dt = if ty == Ty::F64 { DType::F64 } else { DType::F32 };
    let n_base = base.len();
    let table = Tensor::from_vec(&[n_base], base).cast(dt);
    let base_buf = cx.prog.add_buffer(format!("{}.base", cx.name), dt, vec![n_base], BufKind::Weight(Arc::new(table)));
    let mut k = cx.kernel("");
    k.for_(shape[0], |k, b| {
        k.for_shape(sp, |k, p| {
            // h[k]: innermost spatial axis first, then 1.
            let h: Vec<Expr> = (0..nd).map(|j| e::load(base_buf, iadd(e::idx(start[nd - 1 - j] as i64), p[nd - 1 - j].clone()))).collect();
            for r in 0..nd {
                let row = iadd(imul(b.clone(), (nd * (nd + 1)) as i64), e::idx((r * (nd + 1)) as i64));
                let th = |c: usize| e::load(theta.buf, iadd(row.clone(), e::idx(c as i64)));
                let v = h.iter().enumerate().fold(None, |acc: Option<Expr>, (c, hc)| {
                    let t = e::mul(th(c), hc.clone());
                    Some(match acc {
                        None => t,
                        Some(a) => e::add(a, t),
                    })
                });
                let v = e::add(v.expect("two or three axes"), th(nd));
                let mut at = vec![b.clone()];
                at.extend(p.iter().cloned());
                at.push(e::idx(r as i64));
                k.store(y.buf, linear(shape, &at), v);
            }
        });
    });
    cx.emit(k.finish());
    Ok(())
}
