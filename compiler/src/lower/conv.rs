//! Lowering of the conv family: Conv, ConvInteger, QLinearConv and ConvTranspose
//! (DeformConv and Col2Im live in `lower/deform.rs`).
//!
//! Every conv is a direct loop nest, no im2col buffer: `(batch, group, out channel)`
//! outside, then either the output plane as accumulator ([`ConvDims::emit`]), with one
//! loop nest per kernel position over exactly the output positions whose tap lies
//! inside the input (ranges computed from the static shapes, [`Span`]), so the inner
//! loops carry no bounds test and have affine indices the backends can vectorise; or a
//! scalar accumulator per output element, where a tap outside the input is skipped by
//! an `If` that only tests the bounds a tap can actually cross ([`Window::tap`]).
//! Padding is not materialised. ConvTranspose uses the same per-kernel-position nests
//! in scatter form when Y holds the accumulator, and otherwise a gather form (each
//! output element sums the inputs that scatter to it in a variable).

use super::conv_block::Problem;
use super::linalg::{flit, holds_exactly, input, mac, output, zero};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::conv::{conv_geometry, AutoPad, ConvOp, ConvTranspose, Geometry, WindowAttrs};

pub fn lower(op: &ConvOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    match op {
        ConvOp::Conv(a) => {
            let (x, w) = (input(ins, 0)?, input(ins, 1)?);
            let ty = x.kty()?;
            let bias = opt(ins, 2);
            let s = ConvDims::new(a, x.shape(), w.shape())?;
            let g = &s.win.g;
            let problem = Problem {
                n: s.n,
                c: s.c,
                m: s.m,
                group: s.group,
                input: &s.win.target,
                out: &g.grid,
                kernel: &g.kernel,
                strides: &g.strides,
                dilations: &g.dilations,
                pad_head: &g.pad_head,
                transpose: false,
            };
            if super::conv_block::lower(cx, &problem, x, w, bias, y)? {
                return Ok(());
            }
            let mut kb = cx.kernel("");
            let init = |oc| bias.map_or(zero(ty), |b| e::load(b.buf, oc));
            let terms =
                ConvTerms { init: &init, x: &|i| e::load(x.buf, i), w: &|i, _| e::load(w.buf, i), finish: None };
            s.emit(&mut kb, ty, y, &terms);
            cx.emit(kb.finish());
            Ok(())
        }
        ConvOp::ConvInteger(a) => {
            let (x, w) = (input(ins, 0)?, input(ins, 1)?);
            let s = ConvDims::new(a, x.shape(), w.shape())?;
            let (xz, wz) = (int_param(opt(ins, 2), 1, "x_zero_point")?, int_param(opt(ins, 3), s.m, "w_zero_point")?);
            let mut kb = cx.kernel("");
            let terms = ConvTerms {
                init: &|_| e::i32(0),
                x: &|i| e::sub(e::load(x.buf, i), xz.at(e::idx(0))),
                w: &|i, oc| e::sub(e::load(w.buf, i), wz.at(oc)),
                finish: None,
            };
            s.emit(&mut kb, Ty::I32, y, &terms);
            cx.emit(kb.finish());
            Ok(())
        }
        ConvOp::QLinearConv(a) => lower_qlinear_conv(a, cx, ins, y),
        ConvOp::ConvTranspose(t) => lower_conv_transpose(t, cx, ins, y),
        ConvOp::DeformConv(d) => super::deform::lower(d, cx, ins, outs),
        ConvOp::Col2Im(c) => super::deform::lower_col2im(c, cx, ins, outs),
    }
}

fn opt(ins: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ins.get(i).and_then(Option::as_ref)
}

/// An integer parameter (zero point) read at run time: absent (0), one value, or one per
/// channel.
pub(super) enum IntParam {
    Zero,
    One(BufId),
    PerChannel(BufId),
}

impl IntParam {
    pub fn at(&self, channel: Expr) -> Expr {
        match self {
            IntParam::Zero => e::i32(0),
            IntParam::One(b) => e::load(*b, e::idx(0)),
            IntParam::PerChannel(b) => e::load(*b, channel),
        }
    }
}

pub(super) fn int_param(op: Option<&Operand>, per: usize, what: &str) -> Result<IntParam, OpError> {
    match op {
        None => Ok(IntParam::Zero),
        Some(z) if Ty::of_storage(z.ty.dtype) != Some(Ty::I32) => {
            Err(OpError::unsupported(format!("{what} of type {}", z.ty.dtype)))
        }
        Some(z) if z.len() == 1 => Ok(IntParam::One(z.buf)),
        Some(z) if z.len() == per => Ok(IntParam::PerChannel(z.buf)),
        Some(z) => Err(OpError::invalid(format!("{what} has {} values; 1 or {per} expected", z.len()))),
    }
}

/// A sliding window over the spatial axes: grid position `o` and kernel position `k`
/// meet target position `o * stride + k * dilation - pad_head`.
pub(super) struct Window {
    pub g: Geometry,
    /// The spatial extent the positions index (the input for Conv and pools).
    pub target: Vec<usize>,
}

impl Window {
    /// The row-major offset of the tap in the target and, when some tap can fall
    /// outside it, the condition that this one does not.
    pub fn tap(&self, o: &[Expr], k: &[Expr]) -> (Expr, Option<Expr>) {
        let (pos, cond) = self.positions(o, k);
        (linear(&self.target, &pos), cond)
    }

    /// The tap's coordinates in the target, and the in-bounds condition as for [`Self::tap`].
    pub fn positions(&self, o: &[Expr], k: &[Expr]) -> (Vec<Expr>, Option<Expr>) {
        let g = &self.g;
        let mut pos = Vec::with_capacity(o.len());
        let mut cond: Option<Expr> = None;
        for a in 0..o.len() {
            let (s, d, ph) = (g.strides[a], g.dilations[a], g.pad_head[a]);
            let p = iadd(iadd(imul(o[a].clone(), s as i64), imul(k[a].clone(), d as i64)), e::idx(-(ph as i64)));
            let max = (g.grid[a].max(1) - 1) * s + (g.kernel[a] - 1) * d;
            if ph > 0 {
                and_into(&mut cond, e::bin(BinOp::Ge, p.clone(), e::idx(0)));
            }
            if max >= self.target[a] + ph {
                and_into(&mut cond, e::bin(BinOp::Lt, p.clone(), e::idx(self.target[a] as i64)));
            }
            pos.push(p);
        }
        (pos, cond)
    }
}

pub(super) fn and_into(acc: &mut Option<Expr>, c: Expr) {
    *acc = Some(match acc.take() {
        None => c,
        Some(a) => e::bin(BinOp::And, a, c),
    });
}

/// Runs `body` under `cond` when there is one.
pub(super) fn guarded(kb: &mut KernelBuilder, cond: Option<Expr>, body: impl FnOnce(&mut KernelBuilder)) {
    match cond {
        None => body(kb),
        Some(c) => kb.if_(c, body, |_| {}),
    }
}

/// A grouped conv: X `[N, C, in...]`, W `[M, C/group, k...]`, Y `[N, M, grid...]`.
struct ConvDims {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    win: Window,
}

impl ConvDims {
    fn new(a: &WindowAttrs, x: &[usize], w: &[usize]) -> Result<Self, OpError> {
        let (Some((&[n, c], input)), Some((&[m, cw], wk))) = (x.split_first_chunk(), w.split_first_chunk()) else {
            return Err(OpError::invalid("Conv operands must be [N, C, spatial...]"));
        };
        if input.is_empty() || cw.checked_mul(a.group) != Some(c) || m % a.group != 0 || wk.len() != input.len() {
            return Err(OpError::invalid(format!("Conv shapes X {x:?} and W {w:?} do not match group {}", a.group)));
        }
        let kernel = a.kernel(input.len(), Some(wk))?;
        if kernel != wk {
            return Err(OpError::invalid(format!("kernel_shape {kernel:?} differs from W's {wk:?}")));
        }
        let g = conv_geometry(a, input, kernel)?;
        Ok(ConvDims { n, c, m, group: a.group, win: Window { g, target: input.to_vec() } })
    }

    /// `y[b, oc, o] = finish(oc, init(oc) + sum x'[b, ic, tap] * w'[oc, ic, k])` in `ty`.
    ///
    /// When Y holds `ty` exactly and there is no `finish`, Y's plane is the accumulator
    /// and the output positions are the innermost loops (`(ic, k..., o...)`): the
    /// innermost loop then walks Y contiguously and X with the stride, with `w` hoisted.
    /// Otherwise (16-bit floats, requantisation) each output element sums over `(ic,
    /// k...)` in a variable.
    fn emit(&self, kb: &mut KernelBuilder, ty: Ty, y: &Operand, t: &ConvTerms) {
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        let (sp_in, sp_out) = (self.win.target.iter().product::<usize>(), self.win.g.grid.iter().product::<usize>());
        let grid = &self.win.g.grid;
        let kernel = &self.win.g.kernel;
        let kn: usize = kernel.iter().product();
        let in_place = t.finish.is_none() && holds_exactly(y.ty.dtype, ty);
        if in_place && kn <= MAX_UNROLLED_TAPS {
            return self.emit_chained(kb, ty, y, t);
        }
        kb.for_shape(&[self.n, self.group, mg], |kb, ix| {
            let (b, gi, om) = (&ix[0], &ix[1], &ix[2]);
            let oc = iadd(imul(gi.clone(), mg as i64), om.clone());
            let y0 = imul(iadd(imul(b.clone(), self.m as i64), oc.clone()), sp_out as i64);
            let y_at = |o: &[Expr]| iadd(y0.clone(), linear(grid, o));
            let x0 = |ic: Expr| {
                imul(iadd(imul(b.clone(), self.c as i64), iadd(imul(gi.clone(), cg as i64), ic)), sp_in as i64)
            };
            let w0 = |ic: Expr| imul(iadd(imul(oc.clone(), cg as i64), ic), kn as i64);
            if in_place {
                kb.for_shape(grid, |kb, o| kb.store(y.buf, y_at(o), (t.init)(oc.clone())));
                kb.for_(cg, |kb, ic| {
                    kb.for_shape(kernel, |kb, k| {
                        let wv = kb.let_(ty, (t.w)(iadd(w0(ic.clone()), linear(kernel, k)), oc.clone()));
                        kb.for_shape(grid, |kb, o| {
                            let (at, cond) = self.win.tap(o, k);
                            let xv = (t.x)(iadd(x0(ic.clone()), at));
                            guarded(kb, cond, |kb| {
                                kb.store(y.buf, y_at(o), mac(ty, e::load(y.buf, y_at(o)), xv, e::var(wv)))
                            });
                        });
                    });
                });
            } else {
                kb.for_shape(grid, |kb, o| {
                    let acc = kb.let_(ty, (t.init)(oc.clone()));
                    kb.for_(cg, |kb, ic| {
                        kb.for_shape(kernel, |kb, k| {
                            let (at, cond) = self.win.tap(o, k);
                            let xv = (t.x)(iadd(x0(ic.clone()), at));
                            let wv = (t.w)(iadd(w0(ic.clone()), linear(kernel, k)), oc.clone());
                            guarded(kb, cond, |kb| kb.set(acc, mac(ty, e::var(acc), xv, wv)));
                        });
                    });
                    let v = match t.finish {
                        Some(f) => f(oc.clone(), e::var(acc)),
                        None => e::var(acc),
                    };
                    kb.store(y.buf, y_at(o), v);
                });
            }
        });
    }
}

impl ConvDims {
    /// The in-place form with the kernel positions unrolled: each kernel position is its
    /// own loop nest over exactly the output positions whose tap lies inside the input
    /// (computed here, shapes are static): no bounds test, indices affine in the loop
    /// variables, so a stride-1 conv's innermost loop vectorises. Two kinds of register
    /// blocking on top, neither of which changes the order in which an output element
    /// receives its terms:
    /// - the taps of one kernel row (last axis) are chained: each Y element loaded takes
    ///   all of its valid taps of the row before it is stored back ([`segments`]);
    /// - [`out_block`] output channels are computed together, sharing each X load.
    fn emit_chained(&self, kb: &mut KernelBuilder, ty: Ty, y: &Operand, t: &ConvTerms) {
        let (cg, mg) = (self.c / self.group, self.m / self.group);
        let (sp_in, sp_out) = (self.win.target.iter().product::<usize>(), self.win.g.grid.iter().product::<usize>());
        let (grid, kernel, g) = (&self.win.g.grid, &self.win.g.kernel, &self.win.g);
        let kn: usize = kernel.iter().product();
        let last = kernel.len() - 1;
        let rows_per_block = out_block(kernel[last], mg);
        kb.for_shape(&[self.n, self.group], |kb, ix| {
            let (b, gi) = (&ix[0], &ix[1]);
            let block = |kb: &mut KernelBuilder, om0: Expr, rows: usize| {
                let oc = |r: usize| iadd(imul(gi.clone(), mg as i64), iadd(om0.clone(), e::idx(r as i64)));
                let y0 = |r: usize| imul(iadd(imul(b.clone(), self.m as i64), oc(r)), sp_out as i64);
                for r in 0..rows {
                    kb.for_shape(grid, |kb, o| kb.store(y.buf, iadd(y0(r), linear(grid, o)), (t.init)(oc(r))));
                }
                kb.for_(cg, |kb, ic| {
                    let x_ic =
                        imul(iadd(imul(b.clone(), self.c as i64), iadd(imul(gi.clone(), cg as i64), ic.clone())), sp_in as i64);
                    let w_ic = |r: usize| imul(iadd(imul(oc(r), cg as i64), ic.clone()), kn as i64);
                    for prefix in taps(&kernel[..last]) {
                        let span = |a: usize, k: usize| {
                            let off = (k * g.dilations[a]) as i64 - g.pad_head[a] as i64;
                            Span::new(off, g.strides[a], grid[a], self.win.target[a])
                        };
                        let outer: Vec<Span> = (0..last).map(|a| span(a, prefix[a])).collect();
                        if outer.iter().any(|sp| sp.len == 0) {
                            continue;
                        }
                        let row: Vec<Span> = (0..kernel[last]).map(|k| span(last, k)).collect();
                        // weights[r][k]: hoisted out of the output loops.
                        let weights: Vec<Vec<Option<crate::kir::Var>>> = (0..rows)
                            .map(|r| {
                                (0..row.len())
                                    .map(|k| {
                                        (row[k].len > 0).then(|| {
                                            let kx: Vec<Expr> = prefix.iter().chain([&k]).map(|&v| e::idx(v as i64)).collect();
                                            kb.let_(ty, (t.w)(iadd(w_ic(r), linear(kernel, &kx)), oc(r)))
                                        })
                                    })
                                    .collect()
                            })
                            .collect();
                        for (lo, hi, active) in segments(&row) {
                            let mut extents: Vec<usize> = outer.iter().map(|sp| sp.len).collect();
                            extents.push(hi - lo);
                            kb.for_shape(&extents, |kb, q| {
                                let mut o: Vec<Expr> = outer.iter().zip(q).map(|(sp, q)| sp.grid(q)).collect();
                                o.push(iadd(q[last].clone(), e::idx(lo as i64)));
                                let xs: Vec<Expr> = active
                                    .iter()
                                    .map(|&k| {
                                        let mut pos: Vec<Expr> = outer.iter().zip(q).map(|(sp, q)| sp.target(q)).collect();
                                        let sp = &row[k];
                                        pos.push(iadd(imul(o[last].clone(), sp.stride as i64), e::idx(sp.off)));
                                        (t.x)(iadd(x_ic.clone(), linear(&self.win.target, &pos)))
                                    })
                                    .collect();
                                for r in 0..rows {
                                    let at = iadd(y0(r), linear(grid, &o));
                                    let mut v = e::load(y.buf, at.clone());
                                    for (xv, &k) in xs.iter().zip(&active) {
                                        let wv = weights[r][k].expect("active taps have a weight");
                                        v = mac(ty, v, xv.clone(), e::var(wv));
                                    }
                                    kb.store(y.buf, at, v);
                                }
                            });
                        }
                    }
                });
            };
            kb.for_(mg / rows_per_block, |kb, mb| block(kb, imul(mb, rows_per_block as i64), rows_per_block));
            if mg % rows_per_block != 0 {
                block(kb, e::idx((mg / rows_per_block * rows_per_block) as i64), mg % rows_per_block);
            }
        });
    }
}

/// Output channels computed together by the chained conv forms: each X load feeds this
/// many multiply-adds. Bounded so that the hoisted weights (`rows x taps per row`)
/// stay within about 20 float registers (Cortex-M7 has 32).
fn out_block(row_taps: usize, channels: usize) -> usize {
    (20 / row_taps.max(1)).clamp(1, 4).min(channels.max(1))
}

/// What a conv's loop nest reads and writes, beyond its shapes: the factors `x(x_index)`
/// and `w(w_index, out_channel)` (zero points subtracted there), the accumulator's start
/// `init(out_channel)` (the bias) and an optional `finish(out_channel, acc)`.
struct ConvTerms<'a> {
    init: &'a dyn Fn(Expr) -> Expr,
    x: &'a dyn Fn(Expr) -> Expr,
    w: &'a dyn Fn(Expr, Expr) -> Expr,
    finish: Option<&'a dyn Fn(Expr, Expr) -> Expr>,
}

/// Kernels with more positions than this keep the kernel loops (with bounds tests)
/// instead of one loop nest per position, to bound the code size.
const MAX_UNROLLED_TAPS: usize = 64;

/// Every kernel position, row-major.
fn taps(kernel: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![Vec::new()];
    for &d in kernel {
        all = all.into_iter().flat_map(|p: Vec<usize>| (0..d).map(move |i| [p.clone(), vec![i]].concat())).collect();
    }
    all
}

/// The output ranges `lo..hi` of one row of taps (their spans on the last axis) split
/// where the set of taps landing inside the input changes, each with those taps in
/// kernel order: every output position gets exactly its valid taps, in the same order
/// as tap by tap.
fn segments(row: &[Span]) -> Vec<(usize, usize, Vec<usize>)> {
    let mut cuts: Vec<usize> = row.iter().filter(|sp| sp.len > 0).flat_map(|sp| [sp.lo, sp.lo + sp.len]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .filter_map(|w| {
            let (lo, hi) = (w[0], w[1]);
            let active: Vec<usize> =
                (0..row.len()).filter(|&k| row[k].len > 0 && row[k].lo <= lo && hi <= row[k].lo + row[k].len).collect();
            (!active.is_empty()).then_some((lo, hi, active))
        })
        .collect()
}

/// For one axis and one kernel position: the grid positions `j` in `0..count` whose
/// target `j * stride + off` lies in `0..bound`, as `lo..lo + len`.
struct Span {
    lo: usize,
    len: usize,
    stride: usize,
    off: i64,
}

impl Span {
    fn new(off: i64, stride: usize, count: usize, bound: usize) -> Self {
        let s = stride as i64;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let last = bound as i64 - 1 - off;
        let hi = if last < 0 { 0 } else { (last / s + 1).min(count as i64) };
        Span { lo: lo as usize, len: (hi - lo).max(0) as usize, stride, off }
    }

    /// The grid position of loop index `q`.
    fn grid(&self, q: &Expr) -> Expr {
        iadd(q.clone(), e::idx(self.lo as i64))
    }

    /// Its target position, affine in `q`.
    fn target(&self, q: &Expr) -> Expr {
        iadd(imul(q.clone(), self.stride as i64), e::idx(self.lo as i64 * self.stride as i64 + self.off))
    }
}

/// QLinearConv: the exact int32 conv of `(x - x_zp)` and `(w - w_zp)` plus the int32
/// bias, requantised as `saturate(round_half_even(acc * x_scale * w_scale / y_scale +
/// y_zp))`. The factor is computed in F64 like the reference, so rounding ties land the
/// same way.
fn lower_qlinear_conv(a: &WindowAttrs, cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (x, xs, w, ws, ys) = (input(ins, 0)?, input(ins, 1)?, input(ins, 3)?, input(ins, 4)?, input(ins, 6)?);
    let s = ConvDims::new(a, x.shape(), w.shape())?;
    let xz = int_param(opt(ins, 2), 1, "x_zero_point")?;
    let wz = int_param(opt(ins, 5), s.m, "w_zero_point")?;
    let yz = int_param(opt(ins, 7), 1, "y_zero_point")?;
    let bias = int_param(opt(ins, 8), s.m, "bias")?;
    let (lo, hi) = saturation(y.ty.dtype)?;
    if ws.len() != 1 && ws.len() != s.m {
        return Err(OpError::invalid("w_scale must have 1 or M values"));
    }
    let ws_at = |oc: Expr| if ws.len() == 1 { e::load(ws.buf, e::idx(0)) } else { e::load(ws.buf, oc) };
    let f64_of = |v: Expr| e::cast(Ty::F64, v);
    let mut kb = cx.kernel("");
    let requantise = |oc: Expr, acc: Expr| {
        let factor =
            e::div(e::mul(f64_of(e::load(xs.buf, e::idx(0))), f64_of(ws_at(oc))), f64_of(e::load(ys.buf, e::idx(0))));
        let v = e::add(e::mul(f64_of(acc), factor), f64_of(yz.at(e::idx(0))));
        e::cast(Ty::I32, clamp(e::un(UnOp::Round, v), Ty::F64, lo, hi))
    };
    let terms = ConvTerms {
        init: &|oc| bias.at(oc),
        x: &|i| e::sub(e::load(x.buf, i), xz.at(e::idx(0))),
        w: &|i, oc| e::sub(e::load(w.buf, i), wz.at(oc)),
        finish: Some(&requantise),
    };
    s.emit(&mut kb, Ty::I32, y, &terms);
    cx.emit(kb.finish());
    Ok(())
}

/// The integer range of a quantised output type.
pub(super) fn saturation(d: DType) -> Result<(f64, f64), OpError> {
    Ok(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::U2 => (0.0, 3.0),
        DType::I2 => (-2.0, 1.0),
        d => return Err(OpError::unsupported(format!("quantised output of type {d}"))),
    })
}

/// `min(max(v, lo), hi)` on a float (NaN propagates; the cast after it makes it 0).
pub(super) fn clamp(v: Expr, ty: Ty, lo: f64, hi: f64) -> Expr {
    e::bin(BinOp::Min, e::bin(BinOp::Max, v, flit(ty, lo)), flit(ty, hi))
}

/// ConvTranspose in gather form: `y[b, oc, o] = bias[oc] + sum x[b, ic, i] * w[ic, om,
/// k]` over the (i, k) with `i * stride + k * dilation - pad_head = o`, i.e. `t = o +
/// pad_head - k * dilation` divisible by the stride with `t / stride` inside the input.
fn lower_conv_transpose(
    t: &ConvTranspose,
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    y: &Operand,
) -> Result<(), OpError> {
    let (x, w) = (input(ins, 0)?, input(ins, 1)?);
    let bias = opt(ins, 2);
    let ty = x.kty()?;
    let a = &t.window;
    let (Some((&[n, c], input_sp)), Some((&[_, mg], wk)), Some((&[_, m], out_sp))) =
        (x.shape().split_first_chunk(), w.shape().split_first_chunk(), y.shape().split_first_chunk())
    else {
        return Err(OpError::invalid("ConvTranspose operands must be [N, C, spatial...]"));
    };
    let ns = input_sp.len();
    if ns == 0
        || wk.len() != ns
        || out_sp.len() != ns
        || a.group == 0
        || c % a.group != 0
        || mg.checked_mul(a.group) != Some(m)
    {
        return Err(OpError::invalid("ConvTranspose shapes do not match"));
    }
    let kernel = a.kernel(ns, Some(wk))?;
    if kernel != wk {
        return Err(OpError::invalid(format!("kernel_shape {kernel:?} differs from W's {wk:?}")));
    }
    let mut g = a.geometry(kernel.clone())?;
    let op_pad: Vec<usize> = match t.output_padding.len() {
        0 => vec![0; ns],
        l if l == ns || l == 2 * ns => t.output_padding[..ns].to_vec(),
        _ => return Err(OpError::invalid("output_padding does not fit the spatial axes")),
    };
    if matches!(a.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
        for i in 0..ns {
            let eff = (kernel[i] - 1) * g.dilations[i] + 1;
            let full = g.strides[i] * (input_sp[i].max(1) - 1) + op_pad[i] + eff;
            let total = full.saturating_sub(out_sp[i]);
            g.pad_head[i] = if a.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
        }
    }
    let problem = Problem {
        n,
        c,
        m,
        group: a.group,
        input: input_sp,
        out: out_sp,
        kernel: &kernel,
        strides: &g.strides,
        dilations: &g.dilations,
        pad_head: &g.pad_head,
        transpose: true,
    };
    if super::conv_block::lower(cx, &problem, x, w, bias, y)? {
        return Ok(());
    }
    let cg = c / a.group;
    let (sp_in, sp_out, kn) =
        (input_sp.iter().product::<usize>(), out_sp.iter().product::<usize>(), kernel.iter().product::<usize>());
    let mut kb = cx.kernel("");
    if holds_exactly(y.ty.dtype, ty) && kn <= MAX_UNROLLED_TAPS {
        // Scatter form with Y's plane as the accumulator: per kernel position, the
        // input positions that land inside the output are a range known here, and the
        // output position `i * stride + k * dilation - pad_head` is affine in `i`. Each
        // output element still sums its terms in (in channel, kernel position) order,
        // as the gather form below does, so the results are the same. Register
        // blocking as in Conv's chained form: taps of a kernel row that land on the
        // same output phase (`off mod stride`) are chained (output `u * stride + base`
        // takes `x[u - shift(k)] * w[k]` for each such tap in kernel order, loaded and
        // stored once), and `out_block` output channels share each X load.
        let last = ns - 1;
        let rows_per_block = out_block(kernel[last].div_ceil(g.strides[last].max(1)), mg);
        let span = |ax: usize, k: usize| {
            let off = (k * g.dilations[ax]) as i64 - g.pad_head[ax] as i64;
            Span::new(off, g.strides[ax], input_sp[ax], out_sp[ax])
        };
        kb.for_shape(&[n, a.group], |kb, ix| {
            let (b, gi) = (&ix[0], &ix[1]);
            let block = |kb: &mut KernelBuilder, om0: Expr, rows: usize| {
                let om = |r: usize| iadd(om0.clone(), e::idx(r as i64));
                let oc = |r: usize| iadd(imul(gi.clone(), mg as i64), om(r));
                let y0 = |r: usize| imul(iadd(imul(b.clone(), m as i64), oc(r)), sp_out as i64);
                for r in 0..rows {
                    let init = bias.map_or(zero(ty), |bb| e::load(bb.buf, oc(r)));
                    kb.for_shape(out_sp, |kb, o| kb.store(y.buf, iadd(y0(r), linear(out_sp, o)), init.clone()));
                }
                kb.for_(cg, |kb, icl| {
                    let ic = iadd(imul(gi.clone(), cg as i64), icl);
                    let x0 = imul(iadd(imul(b.clone(), c as i64), ic.clone()), sp_in as i64);
                    let w0 = |r: usize| imul(iadd(imul(ic.clone(), mg as i64), om(r)), kn as i64);
                    for prefix in taps(&kernel[..last]) {
                        let outer: Vec<Span> = (0..last).map(|ax| span(ax, prefix[ax])).collect();
                        if outer.iter().any(|sp| sp.len == 0) {
                            continue;
                        }
                        let row: Vec<Span> = (0..kernel[last]).map(|k| span(last, k)).collect();
                        let st = g.strides[last] as i64;
                        let mut phases: Vec<i64> =
                            row.iter().filter(|sp| sp.len > 0).map(|sp| sp.off.rem_euclid(st)).collect();
                        phases.sort_unstable();
                        phases.dedup();
                        for phase in phases {
                            let class: Vec<usize> =
                                (0..row.len()).filter(|&k| row[k].len > 0 && row[k].off.rem_euclid(st) == phase).collect();
                            let base = class.iter().map(|&k| row[k].off).min().expect("a phase has a tap");
                            let shift = |k: usize| ((row[k].off - base) / st) as usize;
                            // Each tap's valid inputs, as a range of `u = i + shift`.
                            let in_u: Vec<Span> = (0..row.len())
                                .map(|k| match class.contains(&k) {
                                    true => Span { lo: row[k].lo + shift(k), len: row[k].len, stride: 1, off: 0 },
                                    false => Span { lo: 0, len: 0, stride: 1, off: 0 },
                                })
                                .collect();
                            let weights: Vec<Vec<Option<crate::kir::Var>>> = (0..rows)
                                .map(|r| {
                                    (0..row.len())
                                        .map(|k| {
                                            class.contains(&k).then(|| {
                                                let kx: Vec<Expr> =
                                                    prefix.iter().chain([&k]).map(|&v| e::idx(v as i64)).collect();
                                                kb.let_(ty, e::load(w.buf, iadd(w0(r), linear(&kernel, &kx))))
                                            })
                                        })
                                        .collect()
                                })
                                .collect();
                            for (lo, hi, active) in segments(&in_u) {
                                let mut extents: Vec<usize> = outer.iter().map(|sp| sp.len).collect();
                                extents.push(hi - lo);
                                kb.for_shape(&extents, |kb, q| {
                                    let u = iadd(q[last].clone(), e::idx(lo as i64));
                                    let mut o: Vec<Expr> = outer.iter().zip(q).map(|(sp, q)| sp.target(q)).collect();
                                    o.push(iadd(imul(u.clone(), st), e::idx(base)));
                                    let xs: Vec<Expr> = active
                                        .iter()
                                        .map(|&k| {
                                            let mut i: Vec<Expr> = outer.iter().zip(q).map(|(sp, q)| sp.grid(q)).collect();
                                            i.push(iadd(u.clone(), e::idx(-(shift(k) as i64))));
                                            e::load(x.buf, iadd(x0.clone(), linear(input_sp, &i)))
                                        })
                                        .collect();
                                    for r in 0..rows {
                                        let at = iadd(y0(r), linear(out_sp, &o));
                                        let mut v = e::load(y.buf, at.clone());
                                        for (xv, &k) in xs.iter().zip(&active) {
                                            let wv = weights[r][k].expect("active taps have a weight");
                                            v = mac(ty, v, xv.clone(), e::var(wv));
                                        }
                                        kb.store(y.buf, at, v);
                                    }
                                });
                            }
                        }
                    }
                });
            };
            kb.for_(mg / rows_per_block, |kb, mb| block(kb, imul(mb, rows_per_block as i64), rows_per_block));
            if mg % rows_per_block != 0 {
                block(kb, e::idx((mg / rows_per_block * rows_per_block) as i64), mg % rows_per_block);
            }
        });
        cx.emit(kb.finish());
        return Ok(());
    }
    kb.for_shape(&[n, a.group, mg], |kb, ix| {
        let (b, gi, om) = (&ix[0], &ix[1], &ix[2]);
        let oc = iadd(imul(gi.clone(), mg as i64), om.clone());
        let y0 = imul(iadd(imul(b.clone(), m as i64), oc.clone()), sp_out as i64);
        kb.for_shape(out_sp, |kb, o| {
            let acc = kb.let_(ty, bias.map_or(zero(ty), |bb| e::load(bb.buf, oc.clone())));
            kb.for_(cg, |kb, icl| {
                let ic = iadd(imul(gi.clone(), cg as i64), icl);
                let x0 = imul(iadd(imul(b.clone(), c as i64), ic.clone()), sp_in as i64);
                let w0 = imul(iadd(imul(ic, mg as i64), om.clone()), kn as i64);
                kb.for_shape(&kernel, |kb, k| {
                    let mut cond = None;
                    let mut pos = Vec::with_capacity(ns);
                    for a in 0..ns {
                        let (s, d) = (g.strides[a] as i64, g.dilations[a] as i64);
                        let tt = iadd(iadd(o[a].clone(), e::idx(g.pad_head[a] as i64)), imul(k[a].clone(), -d));
                        and_into(&mut cond, e::bin(BinOp::Ge, tt.clone(), e::idx(0)));
                        if s > 1 {
                            and_into(
                                &mut cond,
                                e::bin(BinOp::Eq, e::bin(BinOp::Rem, tt.clone(), e::idx(s)), e::idx(0)),
                            );
                        }
                        let i = if s > 1 { e::div(tt, e::idx(s)) } else { tt };
                        and_into(&mut cond, e::bin(BinOp::Lt, i.clone(), e::idx(input_sp[a] as i64)));
                        pos.push(i);
                    }
                    let xv = e::load(x.buf, iadd(x0.clone(), linear(input_sp, &pos)));
                    let wv = e::load(w.buf, iadd(w0.clone(), linear(&kernel, k)));
                    guarded(kb, cond, |kb| kb.set(acc, mac(ty, e::var(acc), xv, wv)));
                });
            });
            kb.store(y.buf, iadd(y0.clone(), linear(out_sp, o)), e::var(acc));
        });
    });
    cx.emit(kb.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{Tensor, TypeInfo};

    fn attrs(pads: Vec<usize>) -> WindowAttrs {
        WindowAttrs {
            auto_pad: AutoPad::NotSet,
            kernel_shape: None,
            strides: vec![],
            dilations: vec![],
            pads,
            group: 1,
        }
    }

    #[test]
    fn padded_conv_skips_taps_outside_the_input() {
        let ins = [Tensor::from_vec(&[1, 1, 3, 3], vec![1.0f32; 9]), Tensor::from_vec(&[1, 1, 3, 3], vec![1.0f32; 9])];
        let op = ConvOp::Conv(attrs(vec![1, 1, 1, 1]));
        let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![1, 1, 3, 3])], |cx, i, o| lower(&op, cx, i, o));
        let want = vec![4.0f32, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0];
        assert_eq!(y[0], Tensor::from_vec(&[1, 1, 3, 3], want));
    }

    #[test]
    fn unpadded_window_needs_no_bounds_test() {
        let g = attrs(vec![]).geometry(vec![2]).unwrap();
        let win = Window { g: Geometry { grid: vec![3], ..g }, target: vec![4] };
        let (_, cond) = win.tap(&[e::idx(0)], &[e::idx(0)]);
        assert!(cond.is_none());
    }

    #[test]
    fn conv_transpose_gathers_strided_inputs() {
        // 1-D, stride 2, kernel [1, 1]: each input lands on two outputs.
        let ins =
            [Tensor::from_vec(&[1, 1, 3], vec![1.0f32, 2.0, 3.0]), Tensor::from_vec(&[1, 1, 2], vec![1.0f32, 10.0])];
        let mut window = attrs(vec![]);
        window.strides = vec![2];
        let op = ConvOp::ConvTranspose(ConvTranspose { window, output_padding: vec![], output_shape: None });
        let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![1, 1, 6])], |cx, i, o| lower(&op, cx, i, o));
        assert_eq!(y[0], Tensor::from_vec(&[1, 1, 6], vec![1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0]));
    }

    /// Integer-valued data, so every summation order gives the same floats.
    fn ramp(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| ((i * 7 + seed) % 11) as f32 - 5.0).collect())
    }

    /// The per-kernel-position loop nests agree with the reference evaluator on
    /// strided, dilated, asymmetrically padded and grouped 1-D and 2-D geometries.
    #[test]
    fn unrolled_taps_match_the_reference() {
        use crate::ops::Semantics;
        // (x shape, w shape, strides, dilations, pads, group, output_padding)
        type Case = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, usize, Vec<usize>);
        let cases: Vec<Case> = vec![
            (vec![1, 2, 7], vec![4, 2, 3], vec![1], vec![1], vec![1, 1], 1, vec![]),
            (vec![1, 2, 9], vec![2, 1, 3], vec![2], vec![2], vec![3, 0], 2, vec![1]),
            (vec![2, 2, 5, 6], vec![2, 2, 3, 2], vec![2, 1], vec![1, 2], vec![1, 0, 2, 3], 1, vec![1, 0]),
            (vec![1, 4, 4, 4], vec![4, 1, 4, 4], vec![2, 3], vec![1, 1], vec![1, 2, 1, 0], 2, vec![0, 2]),
            // Output channels not a multiple of the channel block (a leftover block).
            (vec![1, 3, 8], vec![6, 6, 3], vec![1], vec![2], vec![2, 1], 1, vec![]),
            (vec![1, 2, 5, 4], vec![5, 5, 4, 3], vec![2, 3], vec![1, 1], vec![1, 0, 1, 2], 1, vec![1, 0]),
        ];
        for (xs, ws, strides, dilations, pads, group, output_padding) in cases {
            let window = WindowAttrs { strides, dilations, pads, group, ..attrs(vec![]) };
            // Conv takes W as [M, C/group, k...]; ConvTranspose as [C, M/group, k...].
            let conv_w: Vec<usize> = [vec![ws[0], xs[1] / group], ws[2..].to_vec()].concat();
            let tr_w: Vec<usize> = [vec![xs[1], ws[1]], ws[2..].to_vec()].concat();
            let ops = [
                (ConvOp::Conv(window.clone()), conv_w),
                (ConvOp::ConvTranspose(ConvTranspose { window, output_padding, output_shape: None }), tr_w),
            ];
            for (op, w_shape) in ops {
                let m = if matches!(op, ConvOp::Conv(_)) { w_shape[0] } else { w_shape[1] * group };
                let ins = [ramp(&xs, 1), ramp(&w_shape, 3), ramp(&[m], 5)];
                let refs: Vec<Option<&Tensor>> = ins.iter().map(Some).collect();
                let want = op.eval(&refs).expect("reference");
                let got = run_op(&ins, &[want[0].type_info()], |cx, i, o| lower(&op, cx, i, o));
                assert_eq!(got[0], want[0], "{op:?} on X {xs:?}");
            }
        }
    }
}
