//! Lowering of the conv-family ops with irregular taps: `DeformConv` and `Col2Im`.
//!
//! `DeformConv` (2-D) is the direct conv loop nest of `lower/conv.rs`, with every
//! kernel tap displaced by its learned offset and sampled bilinearly.
//!
//! Loops run `(batch, group, out channel, oh, ow)` outside, so output elements are
//! written in order, and `(in channel, kh, kw)` inside, accumulating in a variable.
//! A sample's four corners are read only under an `If` that tests them in bounds in
//! float (NaN offsets fail every comparison and read zero, as in the reference): the
//! float → index casts sit inside that `If`, so no backend converts an out-of-range
//! float.

use super::linalg::{flit, holds_exactly, input, mac, output, zero};
use super::shape::util::konst_ints;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty, UnOp};
use crate::ops::conv::{Col2Im, DeformConv, DeformShapes};

pub(super) fn lower(op: &DeformConv, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    let (x, w, off) = (input(ins, 0)?, input(ins, 1)?, input(ins, 2)?);
    let ty = x.kty()?;
    if !ty.is_float() {
        return Err(OpError::invalid("DeformConv input must be a float tensor"));
    }
    let s = op.shapes(x.shape(), w.shape(), off.shape())?;
    let (og, group) = (op.offset_group(), op.group());
    let kn = s.k[0] * s.k[1];
    let osp = s.o[0] * s.o[1];
    let bias = ins.get(3).and_then(Option::as_ref);
    if bias.is_some_and(|b| b.len() != s.m) {
        return Err(OpError::invalid("DeformConv bias must have one value per output channel"));
    }
    let mask = ins.get(4).and_then(Option::as_ref);
    if mask.is_some_and(|m| m.len() != s.n * og * kn * osp) {
        return Err(OpError::invalid("DeformConv mask does not match the offsets"));
    }
    let (cg, mg, cpo) = (s.c / group, s.m / group, s.c / og);
    let mut k = cx.kernel("");
    k.for_shape(&[s.n, group, mg, s.o[0], s.o[1]], |k, ix| {
        let (b, g, ocg, i, j) = (&ix[0], &ix[1], &ix[2], &ix[3], &ix[4]);
        let oc = iadd(imul(g.clone(), mg as i64), ocg.clone());
        let acc = k.let_(ty, bias.map_or(zero(ty), |bs| e::load(bs.buf, oc.clone())));
        k.for_shape(&[cg, s.k[0], s.k[1]], |k, t| {
            let (icg, kh, kw) = (&t[0], &t[1], &t[2]);
            let ic = iadd(imul(g.clone(), cg as i64), icg.clone());
            let ogi = if og == 1 { e::idx(0) } else { e::div(ic.clone(), e::idx(cpo as i64)) };
            let kk = iadd(imul(kh.clone(), s.k[1] as i64), kw.clone());
            // Offset/mask channel of this tap: (b, offset group, kk).
            let tap = iadd(imul(iadd(imul(b.clone(), og as i64), ogi), kn as i64), kk.clone());
            let at_tap = |ch: Expr| linear(&[s.n * og * kn * 2, s.o[0], s.o[1]], &[ch, i.clone(), j.clone()]);
            let dh = e::load(off.buf, at_tap(imul(tap.clone(), 2)));
            let dw = e::load(off.buf, at_tap(iadd(imul(tap.clone(), 2), e::idx(1))));
            let hy = k.let_(ty, e::add(position(ty, i, s.s[0], kh, s.d[0], s.p[0]), dh));
            let wx = k.let_(ty, e::add(position(ty, j, s.s[1], kw, s.d[1], s.p[1]), dw));
            let plane = imul(iadd(imul(b.clone(), s.c as i64), ic), (s.ih * s.iw) as i64);
            let v = sample(k, ty, x.buf, plane, &s, e::var(hy), e::var(wx));
            let v = match mask {
                Some(m) => e::mul(v, e::load(m.buf, linear(&[s.n * og * kn, s.o[0], s.o[1]], &[tap, i.clone(), j.clone()]))),
                None => v,
            };
            let wi = iadd(imul(iadd(imul(oc.clone(), cg as i64), icg.clone()), kn as i64), kk);
            k.set(acc, mac(ty, e::var(acc), v, e::load(w.buf, wi)));
        });
        k.store(y.buf, linear(&[s.n, s.m, s.o[0], s.o[1]], &[b.clone(), oc, i.clone(), j.clone()]), e::var(acc));
    });
    cx.emit(k.finish());
    Ok(())
}

/// The undisplaced input coordinate `o * stride + k * dilation - pad` of a tap, as a float.
fn position(ty: Ty, o: &Expr, stride: usize, k: &Expr, dilation: usize, pad: usize) -> Expr {
    let p = iadd(imul(o.clone(), stride as i64), imul(k.clone(), dilation as i64));
    e::sub(e::cast(ty, p), flit(ty, pad as f64))
}

/// The bilinear sample of `plane` (element offset of an `ih × iw` plane of `x`) at
/// `(hy, wx)`, zero outside: a variable summing the in-bounds corners.
fn sample(k: &mut KernelBuilder, ty: Ty, x: crate::kir::BufId, plane: Expr, s: &DeformShapes, hy: Expr, wx: Expr) -> Expr {
    let y0 = k.let_(ty, e::un(UnOp::Floor, hy.clone()));
    let x0 = k.let_(ty, e::un(UnOp::Floor, wx.clone()));
    let fy = k.let_(ty, e::sub(hy, e::var(y0)));
    let fx = k.let_(ty, e::sub(wx, e::var(x0)));
    let one = || flit(ty, 1.0);
    let v = k.let_(ty, zero(ty));
    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let r = e::add(e::var(y0), flit(ty, dy as f64));
        let c = e::add(e::var(x0), flit(ty, dx as f64));
        let wy = if dy == 0 { e::sub(one(), e::var(fy)) } else { e::var(fy) };
        let wxw = if dx == 0 { e::sub(one(), e::var(fx)) } else { e::var(fx) };
        let inside = [
            e::bin(BinOp::Ge, r.clone(), flit(ty, 0.0)),
            e::bin(BinOp::Ge, c.clone(), flit(ty, 0.0)),
            e::bin(BinOp::Lt, r.clone(), flit(ty, s.ih as f64)),
            e::bin(BinOp::Lt, c.clone(), flit(ty, s.iw as f64)),
        ]
        .into_iter()
        .reduce(|a, b| e::bin(BinOp::And, a, b))
        .expect("four conditions");
        k.if_(
            inside,
            |k| {
                let at = iadd(plane.clone(), iadd(imul(e::cast(Ty::Index, r), s.iw as i64), e::cast(Ty::Index, c)));
                let term = e::mul(e::mul(e::load(x, at), wy), wxw);
                k.set(v, e::add(e::var(v), term));
            },
            |_| {},
        );
    }
    e::var(v)
}

/// `Col2Im` with constant `image_shape` and `block_shape` (a run-time image shape
/// would make the output shape data-dependent): the output is zeroed, then every
/// (batch, channel, block position, grid position) column element is added at the image
/// position its window tap lands on, skipping taps in the padding. The loop order is
/// the reference's, so float sums round identically when the output holds them exactly;
/// narrower outputs would round every partial sum and are reported unsupported.
pub(super) fn lower_col2im(op: &Col2Im, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    let x = input(ins, 0)?;
    let ty = x.kty()?;
    if !holds_exactly(y.ty.dtype, ty) {
        return Err(OpError::unsupported(format!("Col2Im accumulating in {} tensors", y.ty.dtype)));
    }
    let image = konst_ints(ins, 1, "image_shape")?.ok_or_else(|| OpError::invalid("image_shape is required"))?;
    let block = konst_ints(ins, 2, "block_shape")?.ok_or_else(|| OpError::invalid("block_shape is required"))?;
    let (n, c, g, image) = op.shapes(x.shape(), &image, &block)?;
    let (kn, l, sp) = (g.kernel.iter().product::<usize>(), g.grid.iter().product::<usize>(), image.iter().product::<usize>());
    let mut k = cx.kernel("");
    k.for_(y.len(), |k, i| k.store(y.buf, i, zero(ty)));
    k.for_shape(&[n * c], |k, bc| {
        let bc = &bc[0];
        k.for_shape(&g.kernel, |k, ki| {
            k.for_shape(&g.grid, |k, gi| {
                let pos: Vec<Expr> = (0..image.len())
                    .map(|a| {
                        let p = iadd(imul(gi[a].clone(), g.strides[a] as i64), imul(ki[a].clone(), g.dilations[a] as i64));
                        e::sub(p, e::idx(g.pad_head[a] as i64))
                    })
                    .collect();
                let inside = pos
                    .iter()
                    .zip(&image)
                    .flat_map(|(p, &d)| {
                        let lo = (g.pad_head.iter().any(|&h| h > 0)).then(|| e::bin(BinOp::Ge, p.clone(), e::idx(0)));
                        [lo, Some(e::bin(BinOp::Lt, p.clone(), e::idx(d as i64)))]
                    })
                    .flatten()
                    .reduce(|a, b| e::bin(BinOp::And, a, b))
                    .unwrap_or_else(|| e::bool(true));
                let src = iadd(imul(iadd(imul(bc.clone(), kn as i64), linear(&g.kernel, ki)), l as i64), linear(&g.grid, gi));
                k.if_(
                    inside,
                    |k| {
                        let dst = iadd(imul(bc.clone(), sp as i64), linear(&image, &pos));
                        k.store(y.buf, dst.clone(), e::add(e::load(y.buf, dst), e::load(x.buf, src)));
                    },
                    |_| {},
                );
            });
        });
    });
    cx.emit(k.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Tensor, TypeInfo};
    use crate::kir::{interp, BufKind, Program};
    use crate::ops::conv::{AutoPad, ConvOp, WindowAttrs};
    use crate::ops::Semantics;
    use std::sync::Arc;

    /// The conformance cases feed `image_shape` at run time (unsupported by design), so
    /// Col2Im is checked here against the reference evaluator with constant shapes.
    #[test]
    fn col2im_matches_the_reference_with_padding_and_strides() {
        let window =
            WindowAttrs { auto_pad: AutoPad::NotSet, kernel_shape: None, strides: vec![2, 2], dilations: vec![1, 1], pads: vec![1, 1, 1, 1], group: 1 };
        let col = Col2Im { window };
        let x = Tensor::from_vec(&[1, 8, 9], (0..72).map(|v| v as f32 * 0.5 - 3.0).collect::<Vec<f32>>());
        let (image, block) = (Tensor::from_vec(&[2], vec![5i64, 5]), Tensor::from_vec(&[2], vec![2i64, 2]));
        let want = ConvOp::Col2Im(col.clone()).eval(&[Some(&x), Some(&image), Some(&block)]).expect("evaluates");

        let mut prog = Program::default();
        let xb = prog.add_buffer("x", DType::F32, vec![1, 8, 9], BufKind::Input(0));
        let konst = |prog: &mut Program, t: &Tensor| Operand {
            buf: prog.add_buffer("c", DType::I64, vec![2], BufKind::Weight(Arc::new(t.clone()))),
            ty: t.type_info(),
            konst: Some(Arc::new(t.clone())),
        };
        let ins = vec![Some(Operand { buf: xb, ty: x.type_info(), konst: None }), Some(konst(&mut prog, &image)), Some(konst(&mut prog, &block))];
        let yt = TypeInfo::new(DType::F32, vec![1, 2, 5, 5]);
        let outs = vec![Some(Operand { buf: prog.add_buffer("y", DType::F32, yt.shape.clone(), BufKind::Output(0)), ty: yt, konst: None })];
        let mut cx = LowerCx { prog: &mut prog, name: "col2im".into(), aliases: Vec::new() };
        lower_col2im(&col, &mut cx, &ins, &outs).expect("lowers");
        let got = interp::run(&prog, &[x]).expect("runs");
        assert_eq!(got[0].to_f64_vec(), want[0].to_f64_vec());
    }
}
