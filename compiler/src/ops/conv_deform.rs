//! `DeformConv` (2-D): a conv whose kernel taps are displaced by learned offsets and
//! sampled bilinearly (zero outside the image), optionally scaled by a mask.

use super::{conv_geometry, split_nc, WindowAttrs};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};
use crate::ops::linalg::num::{expect_float, from_f64, numel};
use crate::ops::util::{input, opt_input};
use crate::ops::InferCtx;

#[derive(Clone, Debug)]
pub struct DeformConv {
    window: WindowAttrs,
    offset_group: usize,
}

/// Resolved shapes: X `[N, C, H, W]`, W `[M, C/group, kh, kw]`, output `[N, M, oh, ow]`
/// (kernel, strides, dilations, head pads and output extents per spatial axis).
pub struct Shapes {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub ih: usize,
    pub iw: usize,
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub d: [usize; 2],
    pub p: [usize; 2],
    pub o: [usize; 2],
}

impl DeformConv {
    pub fn parse(ctx: &NodeCtx) -> Result<Self, OpError> {
        let og = ctx.int_or("offset_group", 1)?;
        if !(1..1 << 32).contains(&og) {
            return Err(OpError::invalid(format!("offset_group must be positive, got {og}")));
        }
        Ok(DeformConv { window: WindowAttrs::parse(ctx)?, offset_group: og as usize })
    }

    pub fn group(&self) -> usize {
        self.window.group
    }

    pub fn offset_group(&self) -> usize {
        self.offset_group
    }

    /// The geometry for operands X, W and offset of these shapes (checked).
    pub fn shapes(&self, x: &[usize], w: &[usize], offset: &[usize]) -> Result<Shapes, OpError> {
        let (n, c, sp) = split_nc("X", x)?;
        let (m, cw, wk) = split_nc("W", w)?;
        let &[ih, iw] = sp else {
            return Err(OpError::unsupported(format!("DeformConv on {} spatial axes (edgec handles 2)", sp.len())));
        };
        let a = &self.window;
        if cw.checked_mul(a.group) != Some(c) || m % a.group != 0 || wk.len() != 2 || c % self.offset_group != 0 {
            return Err(OpError::invalid(format!("DeformConv shapes X {x:?} and W {w:?} do not match the groups")));
        }
        let g =
            conv_geometry(&WindowAttrs { auto_pad: super::AutoPad::NotSet, ..a.clone() }, sp, a.kernel(2, Some(wk))?)?;
        let k = [g.kernel[0], g.kernel[1]];
        let want = [n, self.offset_group * k[0] * k[1] * 2, g.grid[0], g.grid[1]];
        if offset != want {
            return Err(OpError::invalid(format!("DeformConv offset has shape {offset:?}; {want:?} expected")));
        }
        Ok(Shapes {
            n,
            c,
            m,
            ih,
            iw,
            k,
            s: [g.strides[0], g.strides[1]],
            d: [g.dilations[0], g.dilations[1]],
            p: [g.pad_head[0], g.pad_head[1]],
            o: [g.grid[0], g.grid[1]],
        })
    }

    pub fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_float("DeformConv input", x.dtype)?;
        let s = self.shapes(&x.shape, &ctx.input(1)?.shape, &ctx.input(2)?.shape)?;
        Ok(vec![TypeInfo::new(x.dtype, vec![s.n, s.m, s.o[0], s.o[1]])])
    }

    pub fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, w, off) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        expect_float("DeformConv input", x.dtype())?;
        let s = self.shapes(x.shape(), w.shape(), off.shape())?;
        let kn = s.k[0] * s.k[1];
        let (og, cg, mg) = (self.offset_group, s.c / self.window.group, s.m / self.window.group);
        let cpo = s.c / og;
        let osp = s.o[0] * s.o[1];
        numel(&[s.n, s.m, osp])?;
        let (xv, wv, ov) = (x.to_f64_vec(), w.to_f64_vec(), off.to_f64_vec());
        let mask = opt_input(inputs, 4).map(|t| t.to_f64_vec());
        if mask.as_ref().is_some_and(|m| m.len() != s.n * og * kn * osp) {
            return Err(OpError::invalid("DeformConv mask does not match the offsets"));
        }
        let bias = match opt_input(inputs, 3) {
            Some(b) if b.len() == s.m => b.to_f64_vec(),
            Some(_) => return Err(OpError::invalid("DeformConv bias must have one value per output channel")),
            None => vec![0.0; s.m],
        };
        let mut y = vec![0.0; s.n * s.m * osp];
        for b in 0..s.n {
            for oc in 0..s.m {
                let gi = oc / mg.max(1);
                for i in 0..s.o[0] {
                    for j in 0..s.o[1] {
                        let mut acc = bias[oc];
                        for icg in 0..cg {
                            let ic = gi * cg + icg;
                            let ogi = ic / cpo.max(1);
                            let plane = &xv[(b * s.c + ic) * s.ih * s.iw..][..s.ih * s.iw];
                            for kh in 0..s.k[0] {
                                for kw in 0..s.k[1] {
                                    let kk = kh * s.k[1] + kw;
                                    let obase = ((b * og + ogi) * kn + kk) * 2;
                                    let dh = ov[(obase * s.o[0] + i) * s.o[1] + j];
                                    let dw = ov[((obase + 1) * s.o[0] + i) * s.o[1] + j];
                                    let h = (i * s.s[0] + kh * s.d[0]) as f64 - s.p[0] as f64 + dh;
                                    let wp = (j * s.s[1] + kw * s.d[1]) as f64 - s.p[1] as f64 + dw;
                                    let mut v = bilinear(plane, s.ih, s.iw, h, wp);
                                    if let Some(m) = &mask {
                                        v *= m[(((b * og + ogi) * kn + kk) * s.o[0] + i) * s.o[1] + j];
                                    }
                                    acc += v * wv[(oc * cg + icg) * kn + kk];
                                }
                            }
                        }
                        y[((b * s.m + oc) * s.o[0] + i) * s.o[1] + j] = acc;
                    }
                }
            }
        }
        Ok(vec![from_f64(x.dtype(), &[s.n, s.m, s.o[0], s.o[1]], y)])
    }
}

/// Bilinear sample of an `h × w` plane at (y, x); pixels outside count as zero.
fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |r: f64, c: f64| {
        // Written so that NaN coordinates also read zero.
        if r >= 0.0 && c >= 0.0 && r < h as f64 && c < w as f64 {
            plane[r as usize * w + c as usize]
        } else {
            0.0
        }
    };
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1.0) * (1.0 - fy) * fx
        + at(y0 + 1.0, x0) * fy * (1.0 - fx)
        + at(y0 + 1.0, x0 + 1.0) * fy * fx
}
