//! Pad and CenterCropPad.
//!
//! Constant padding (and CenterCropPad, which is constant padding by zeros with
//! possibly negative amounts) fills the output with the value, then copies the part of
//! the input that survives cropping with one affine loop nest. Reflect, edge and wrap
//! modes compute each output element's source coordinate per axis — a clamp or a
//! modulo on `o - before` — which always lands inside the input, so no load can go out
//! of range.

use super::util::{coeffs, copy_nest, fill, input, ints_arg, konst_ints, lit, opt_input, tensor_lit, times, Access};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty};
use crate::ops::shape::layout::IntsArg;
use crate::ops::shape::{PadMode, PadValue};
use crate::ops::util::norm_axes;

pub fn pad(
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    out: &Operand,
    mode: PadMode,
    pads: &IntsArg,
    value: &PadValue,
    axes: &IntsArg,
) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let rank = x.shape().len();
    let pads = ints_arg(ins, pads, "pads")?.ok_or_else(|| OpError::invalid("Pad needs pads"))?;
    let axes = match ints_arg(ins, axes, "axes")? {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(OpError::invalid(format!("Pad: {} pads for {} axes", pads.len(), axes.len())));
    }
    let mut before = vec![0; rank];
    for (k, &a) in axes.iter().enumerate() {
        before[a] = pads[k];
    }
    let mut k = cx.kernel("");
    if mode == PadMode::Constant {
        let v = pad_value(&mut k, ins, x, value)?;
        constant(&mut k, x, out, &before, v);
    } else {
        extend(&mut k, x, out, &before, mode)?;
    }
    cx.emit(k.finish());
    Ok(())
}

/// The fill value: the attribute, the constant input, the runtime input (loaded once)
/// or zero.
fn pad_value(k: &mut KernelBuilder, ins: &[Option<Operand>], x: &Operand, value: &PadValue) -> Result<Expr, OpError> {
    let ty = x.kty()?;
    Ok(match value {
        PadValue::Attr(f) => lit(ty, *f as f64),
        PadValue::Input(i) => match opt_input(ins, *i) {
            None => lit(ty, 0.0),
            Some(v) if v.ty.dtype != x.ty.dtype || v.is_empty() => {
                return Err(OpError::invalid(format!("Pad value {} for data of {}", v.ty, x.ty.dtype)))
            }
            Some(Operand { konst: Some(t), .. }) => tensor_lit(t, ty)?,
            Some(v) => e::var(k.let_(ty, e::load(v.buf, e::idx(0)))),
        },
    })
}

/// CenterCropPad: per listed axis, crop from `floor((n - t) / 2)` or pad to put the
/// input at `floor((t - n) / 2)`; zeros fill.
pub fn center_crop_pad(
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    out: &Operand,
    axes: Option<&[i64]>,
) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let rank = x.shape().len();
    let target =
        konst_ints(ins, 1, "CenterCropPad shape")?.ok_or_else(|| OpError::invalid("CenterCropPad needs a shape"))?;
    let axes = match axes {
        Some(a) => norm_axes(a, rank)?,
        None => (0..rank).collect(),
    };
    if axes.len() != target.len() {
        return Err(OpError::invalid("CenterCropPad: one target dim per axis"));
    }
    let mut before = vec![0; rank];
    for (&a, &t) in axes.iter().zip(&target) {
        let n = x.shape()[a] as i64;
        before[a] = if t <= n { -((n - t) / 2) } else { (t - n) / 2 };
    }
    let mut k = cx.kernel("");
    let zero = lit(x.kty()?, 0.0);
    constant(&mut k, x, out, &before, zero);
    cx.emit(k.finish());
    Ok(())
}

/// `out` = `value` everywhere, then the input at offset `before` (negative: cropped).
fn constant(k: &mut KernelBuilder, x: &Operand, out: &Operand, before: &[i64], value: Expr) {
    // Per axis, the overlap of the shifted input with the output: it starts at
    // `lo_out` in the output and `lo_in` in the input (clamped first, so huge pads
    // cannot overflow the base arithmetic).
    let (mut src_base, mut dst_base, mut space) = (0, 0, Vec::new());
    let (st, ost) = (coeffs(x.shape()), coeffs(out.shape()));
    for (d, (&n, &o)) in x.shape().iter().zip(out.shape()).enumerate() {
        let lo_out = before[d].clamp(0, o as i64);
        let lo_in = before[d].saturating_neg().clamp(0, n as i64);
        let len = (n as i64 - lo_in).min(o as i64 - lo_out).max(0);
        src_base += lo_in * st[d];
        dst_base += lo_out * ost[d];
        space.push(len as usize);
    }
    if space != out.shape() {
        fill(k, out.buf, out.len(), value);
    }
    let src = Access { buf: x.buf, base: src_base, coeffs: st };
    copy_nest(k, &space, src, Access { buf: out.buf, base: dst_base, coeffs: ost });
}

/// Reflect, edge and wrap: every output element reads the input at a per-axis source
/// coordinate (see [`source`]), computed once per iteration of its axis' loop.
fn extend(k: &mut KernelBuilder, x: &Operand, out: &Operand, before: &[i64], mode: PadMode) -> Result<(), OpError> {
    if x.is_empty() && !out.is_empty() {
        return Err(OpError::invalid("Pad: cannot extend an empty axis in this mode"));
    }
    if out.is_empty() {
        return Ok(());
    }
    let axes = Axes { x, out, before, mode, st: coeffs(x.shape()), ost: coeffs(out.shape()) };
    axes.nest(k, 0, e::idx(0), e::idx(0));
    Ok(())
}

/// What the loop nest of [`extend`] walks.
struct Axes<'a> {
    x: &'a Operand,
    out: &'a Operand,
    before: &'a [i64],
    mode: PadMode,
    st: Vec<i64>,
    ost: Vec<i64>,
}

impl Axes<'_> {
    /// The loops from axis `d` inward; `src`/`dst` are the offsets of the outer axes.
    fn nest(&self, k: &mut KernelBuilder, d: usize, src: Expr, dst: Expr) {
        if d == self.st.len() {
            k.store(self.out.buf, dst, e::load(self.x.buf, src));
            return;
        }
        let (n, b) = (self.x.shape()[d] as i64, self.before[d]);
        let unpadded = b == 0 && self.out.shape()[d] as i64 == n;
        k.for_(self.out.shape()[d], |k, o| {
            let from = if unpadded { o.clone() } else { source(k, self.mode, o.clone(), b, n) };
            let src = iadd(src, times(from, self.st[d]));
            self.nest(k, d + 1, src, iadd(dst, times(o, self.ost[d])));
        });
    }
}

/// The input coordinate output coordinate `o` reads along an axis of `n` padded by `b`
/// in front: `i = o - b` clamped (edge), taken modulo `n` (wrap) or reflected at the
/// ends without repeating the edge (reflect, period `2(n - 1)`). Held in a variable.
fn source(k: &mut KernelBuilder, mode: PadMode, o: Expr, b: i64, n: i64) -> Expr {
    let i = iadd(o, e::idx(-b));
    let bin = |op, a, c| e::bin(op, a, c);
    // The non-negative remainder of i modulo p.
    let modulo = |i: Expr, p: i64| bin(BinOp::Rem, e::add(bin(BinOp::Rem, i, e::idx(p)), e::idx(p)), e::idx(p));
    let v = match mode {
        PadMode::Edge => bin(BinOp::Min, bin(BinOp::Max, i, e::idx(0)), e::idx(n - 1)),
        PadMode::Wrap => modulo(i, n),
        _ if n == 1 => return e::idx(0),
        _ => {
            let m = e::var(k.let_(Ty::Index, modulo(i, 2 * (n - 1))));
            e::select(bin(BinOp::Ge, m.clone(), e::idx(n)), e::sub(e::idx(2 * (n - 1)), m.clone()), m)
        }
    };
    e::var(k.let_(Ty::Index, v))
}
