//! The conv family: Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv, Col2Im.
//!
//! All of them are one gather/scatter over a sliding window: grid position `p` and
//! kernel position `k` meet target position `p * stride + k * dilation - pad_head`
//! ([`taps`]). Conv gathers from the input at the targets; ConvTranspose and Col2Im
//! scatter into the output at them. The window attributes are shared with the pool
//! family ([`WindowAttrs`]).

#[path = "conv_deform.rs"]
mod deform;

pub use deform::{DeformConv, Shapes as DeformShapes};

use super::linalg::num::{expect_float, from_f64, from_i64, int_values, numel, strides as row_strides};
use super::linalg::sub_zero_point;
use super::util::{input, opt_input};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum ConvOp {
    Conv(WindowAttrs),
    ConvTranspose(ConvTranspose),
    /// Conv of `(x - x_zero_point)` and `(w - w_zero_point)` in int32.
    ConvInteger(WindowAttrs),
    /// Quantized conv: integer conv, then requantized with the output scale/zero point.
    QLinearConv(WindowAttrs),
    DeformConv(DeformConv),
    Col2Im(Col2Im),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// Sliding-window attributes common to the conv and pool ops. Empty lists mean "the
/// default for the input's rank" (all ones, or zero pads).
#[derive(Clone, Debug)]
pub struct WindowAttrs {
    pub auto_pad: AutoPad,
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
    pub group: usize,
}

/// Window attributes above this are rejected, and spatial extents must stay below
/// [`MAX_EXTENT`]: every window product then fits comfortably in 64 bits.
const MAX_ATTR: usize = 1 << 24;
pub const MAX_EXTENT: usize = 1 << 32;

/// Checks that spatial extents are small enough for overflow-free window arithmetic.
pub fn check_extent(what: &str, sp: &[usize]) -> Result<(), OpError> {
    if sp.iter().any(|&d| d >= MAX_EXTENT) {
        return Err(OpError::unsupported(format!("{what} {sp:?} has an axis of 2^32 or more")));
    }
    Ok(())
}

/// Non-negative (or, with `min` 1, positive) ints of an attribute.
fn attr_usizes(ctx: &NodeCtx, name: &str, min: i64) -> Result<Option<Vec<usize>>, OpError> {
    let Some(v) = ctx.ints(name)? else { return Ok(None) };
    v.iter()
        .map(|&x| usize::try_from(x).ok().filter(|&u| x >= min && u < MAX_ATTR))
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or_else(|| OpError::invalid(format!("attribute '{name}' has an out-of-range value: {v:?}")))
}

impl WindowAttrs {
    pub fn parse(ctx: &NodeCtx) -> Result<Self, OpError> {
        let auto_pad = match ctx.string_or("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(OpError::invalid(format!("unknown auto_pad '{other}'"))),
        };
        let group = ctx.int_or("group", 1)?;
        if !(1..1 << 32).contains(&group) {
            return Err(OpError::invalid(format!("group must be positive, got {group}")));
        }
        Ok(WindowAttrs {
            auto_pad,
            kernel_shape: attr_usizes(ctx, "kernel_shape", 1)?,
            strides: attr_usizes(ctx, "strides", 1)?.unwrap_or_default(),
            dilations: attr_usizes(ctx, "dilations", 1)?.unwrap_or_default(),
            pads: attr_usizes(ctx, "pads", 0)?.unwrap_or_default(),
            group: group as usize,
        })
    }

    /// The geometry of `kernel` with strides, dilations and explicit pads filled in
    /// (defaults for omitted lists); the caller sets the grid and any auto pads.
    pub fn geometry(&self, kernel: Vec<usize>) -> Result<Geometry, OpError> {
        let n = kernel.len();
        let fill = |v: &[usize], what: &str, want: usize, default: usize| -> Result<Vec<usize>, OpError> {
            match v.len() {
                0 => Ok(vec![default; want]),
                l if l == want => Ok(v.to_vec()),
                l => Err(OpError::invalid(format!("{what} has {l} values; {want} expected"))),
            }
        };
        let s = fill(&self.strides, "strides", n, 1)?;
        let d = fill(&self.dilations, "dilations", n, 1)?;
        if s.contains(&0) || d.contains(&0) {
            return Err(OpError::invalid("strides and dilations must be positive"));
        }
        let p = fill(&self.pads, "pads", 2 * n, 0)?;
        Ok(Geometry {
            strides: s,
            dilations: d,
            pad_head: p[..n].to_vec(),
            pad_tail: p[n..].to_vec(),
            kernel,
            grid: Vec::with_capacity(n),
        })
    }

    /// The kernel shape: the attribute, else `from_weights` (W's spatial shape).
    pub fn kernel(&self, n: usize, from_weights: Option<&[usize]>) -> Result<Vec<usize>, OpError> {
        let k = match (&self.kernel_shape, from_weights) {
            (Some(k), _) => k.clone(),
            (None, Some(w)) => w.to_vec(),
            (None, None) => return Err(OpError::invalid("required attribute 'kernel_shape' is missing")),
        };
        if k.len() != n || k.contains(&0) {
            return Err(OpError::invalid(format!("kernel_shape {k:?} does not fit {n} spatial axes")));
        }
        check_extent("kernel shape", &k)?;
        Ok(k)
    }
}

/// Resolved window geometry over the spatial axes.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_head: Vec<usize>,
    pub pad_tail: Vec<usize>,
    /// The grid the window slides over (the output for Conv and pools, the input for ConvTranspose).
    pub grid: Vec<usize>,
}

/// Conv's output size along one axis, and its head pad, per ONNX's auto_pad rules.
fn conv_axis(
    ap: AutoPad,
    len: usize,
    k: usize,
    s: usize,
    d: usize,
    ph: usize,
    pt: usize,
) -> Result<(usize, usize, usize), OpError> {
    let eff =
        (k - 1).checked_mul(d).and_then(|x| x.checked_add(1)).ok_or_else(|| OpError::invalid("kernel too large"))?;
    let bad = || OpError::invalid(format!("window of {eff} does not fit an axis of {len} (pads {ph}+{pt})"));
    match ap {
        AutoPad::NotSet => {
            let total = len + ph + pt;
            let out = total.checked_sub(eff).ok_or_else(bad)? / s + 1;
            Ok((out, ph, pt))
        }
        AutoPad::Valid => Ok((len.checked_sub(eff).ok_or_else(bad)? / s + 1, 0, 0)),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = len.div_ceil(s);
            let need = ((out.max(1) - 1) * s + eff).saturating_sub(len);
            let head = if ap == AutoPad::SameUpper { need / 2 } else { need - need / 2 };
            Ok((out, head, need - head))
        }
    }
}

/// Conv's geometry for spatial input shape `input`.
pub fn conv_geometry(a: &WindowAttrs, input: &[usize], kernel: Vec<usize>) -> Result<Geometry, OpError> {
    check_extent("input shape", input)?;
    let mut g = a.geometry(kernel)?;
    for (i, &len) in input.iter().enumerate() {
        let (o, h, t) =
            conv_axis(a.auto_pad, len, g.kernel[i], g.strides[i], g.dilations[i], g.pad_head[i], g.pad_tail[i])?;
        g.grid.push(o);
        g.pad_head[i] = h;
        g.pad_tail[i] = t;
    }
    numel(&g.grid)?;
    Ok(g)
}

/// For every (grid position, kernel position) pair, in row-major order of both, the
/// flat index of the target position within `target`, or `None` when it falls outside.
pub fn taps(g: &Geometry, target: &[usize]) -> Result<Vec<Option<usize>>, OpError> {
    let (gn, kn) = (numel(&g.grid)?, numel(&g.kernel)?);
    let total = gn.checked_mul(kn).filter(|&t| t <= 1 << 31).ok_or_else(|| OpError::invalid("window too large"))?;
    let tstr = row_strides(target);
    let mut out = Vec::with_capacity(total);
    let mut gi = vec![0usize; g.grid.len()];
    let mut ki = vec![0usize; g.kernel.len()];
    for p in 0..gn {
        unravel(p, &g.grid, &mut gi);
        for k in 0..kn {
            unravel(k, &g.kernel, &mut ki);
            let mut off = Some(0usize);
            for a in 0..target.len() {
                let pos = (gi[a] * g.strides[a] + ki[a] * g.dilations[a]) as i64 - g.pad_head[a] as i64;
                off = off.filter(|_| pos >= 0 && (pos as usize) < target[a]).map(|o| o + pos as usize * tstr[a]);
            }
            out.push(off);
        }
    }
    Ok(out)
}

pub fn unravel(mut i: usize, dims: &[usize], idx: &mut [usize]) {
    for k in (0..dims.len()).rev() {
        idx[k] = i % dims[k];
        i /= dims[k];
    }
}

/// `[N, C, spatial...]` split, with a clear error for lower ranks.
fn split_nc<'a>(what: &str, shape: &'a [usize]) -> Result<(usize, usize, &'a [usize]), OpError> {
    match shape {
        [n, c, sp @ ..] if !sp.is_empty() => Ok((*n, *c, sp)),
        _ => Err(OpError::invalid(format!("{what} must be [N, C, spatial...], got {shape:?}"))),
    }
}

/// Shapes of a grouped conv: X `[N, C, in...]`, W `[M, C/group, k...]`.
struct ConvShapes {
    n: usize,
    c: usize,
    m: usize,
    input: Vec<usize>,
    g: Geometry,
}

fn conv_shapes(a: &WindowAttrs, x: &[usize], w: &[usize]) -> Result<ConvShapes, OpError> {
    let (n, c, input) = split_nc("X", x)?;
    let (m, cw, wk) = split_nc("W", w)?;
    if cw.checked_mul(a.group) != Some(c) || m % a.group != 0 || wk.len() != input.len() {
        return Err(OpError::invalid(format!("Conv shapes X {x:?} and W {w:?} do not match group {}", a.group)));
    }
    let kernel = a.kernel(input.len(), Some(wk))?;
    if kernel != wk {
        return Err(OpError::invalid(format!("kernel_shape {kernel:?} differs from W's {wk:?}")));
    }
    let g = conv_geometry(a, input, kernel)?;
    Ok(ConvShapes { n, c, m, input: input.to_vec(), g })
}

impl ConvShapes {
    fn out_shape(&self) -> Vec<usize> {
        [vec![self.n, self.m], self.g.grid.clone()].concat()
    }

    /// The grouped conv of row-major `x` and `w`; `fma(acc, x, w)` accumulates.
    fn run<T: Copy>(
        &self,
        group: usize,
        x: &[T],
        w: &[T],
        zero: T,
        fma: impl Fn(T, T, T) -> T,
    ) -> Result<Vec<T>, OpError> {
        let t = taps(&self.g, &self.input)?;
        let (sp_in, sp_out, kn) = (numel(&self.input)?, numel(&self.g.grid)?, numel(&self.g.kernel)?);
        let (cg, mg) = (self.c / group, self.m / group);
        numel(&self.out_shape())?;
        let mut out = Vec::with_capacity(self.n * self.m * sp_out);
        for b in 0..self.n {
            for oc in 0..self.m {
                let gi = oc / mg.max(1);
                for o in 0..sp_out {
                    let mut acc = zero;
                    for ic in 0..cg {
                        let xb = (b * self.c + gi * cg + ic) * sp_in;
                        let wb = (oc * cg + ic) * kn;
                        for (k, tap) in t[o * kn..(o + 1) * kn].iter().enumerate() {
                            if let Some(off) = tap {
                                acc = fma(acc, x[xb + off], w[wb + k]);
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
        Ok(out)
    }
}

/// Per-output-channel bias values (length M), or zeros.
fn bias_values(b: Option<&Tensor>, m: usize) -> Result<Vec<f64>, OpError> {
    match b {
        None => Ok(vec![0.0; m]),
        Some(b) if b.len() == m => Ok(b.to_f64_vec()),
        Some(b) => Err(OpError::invalid(format!("bias has {} values; {m} expected", b.len()))),
    }
}

/// Adds `bias[channel]` to `[N, M, spatial]` data.
fn add_bias<T: Copy>(v: &mut [T], bias: &[T], m: usize, sp: usize, add: impl Fn(T, T) -> T) {
    for (i, x) in v.iter_mut().enumerate() {
        *x = add(*x, bias[(i / sp.max(1)) % m]);
    }
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = match ctx.op_type {
        _ if !ctx.is_default_domain() => return None,
        "Conv" => WindowAttrs::parse(ctx).map(ConvOp::Conv),
        "ConvTranspose" => ConvTranspose::parse(ctx).map(ConvOp::ConvTranspose),
        "ConvInteger" => WindowAttrs::parse(ctx).map(ConvOp::ConvInteger),
        "QLinearConv" => WindowAttrs::parse(ctx).map(ConvOp::QLinearConv),
        "DeformConv" => deform::DeformConv::parse(ctx).map(ConvOp::DeformConv),
        "Col2Im" => Col2Im::parse(ctx).map(ConvOp::Col2Im),
        _ => return None,
    };
    Some(op.map(Op::Conv))
}

impl Semantics for ConvOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            ConvOp::Conv(a) => {
                let x = ctx.input(0)?;
                expect_float("Conv input", x.dtype)?;
                Ok(vec![TypeInfo::new(x.dtype, conv_shapes(a, &x.shape, &ctx.input(1)?.shape)?.out_shape())])
            }
            ConvOp::ConvInteger(a) => {
                check_integer_inputs(&[ctx.input(0)?.dtype, ctx.input(1)?.dtype])?;
                let s = conv_shapes(a, &ctx.input(0)?.shape, &ctx.input(1)?.shape)?;
                Ok(vec![TypeInfo::new(DType::I32, s.out_shape())])
            }
            ConvOp::QLinearConv(a) => {
                check_integer_inputs(&[ctx.input(0)?.dtype, ctx.input(3)?.dtype])?;
                let s = conv_shapes(a, &ctx.input(0)?.shape, &ctx.input(3)?.shape)?;
                let dtype = ctx.opt_input(7).unwrap_or(ctx.input(0)?).dtype;
                Ok(vec![TypeInfo::new(dtype, s.out_shape())])
            }
            ConvOp::ConvTranspose(t) => t.infer(ctx),
            ConvOp::DeformConv(d) => d.infer(ctx),
            ConvOp::Col2Im(c) => c.infer(ctx),
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            ConvOp::Conv(a) => eval_conv(a, inputs),
            ConvOp::ConvInteger(a) => {
                let (s, v) =
                    integer_conv(a, input(inputs, 0)?, input(inputs, 1)?, opt_input(inputs, 2), opt_input(inputs, 3))?;
                Ok(vec![from_i64(DType::I32, &s.out_shape(), v)])
            }
            ConvOp::QLinearConv(a) => eval_qlinear_conv(a, inputs),
            ConvOp::ConvTranspose(t) => t.eval(inputs),
            ConvOp::DeformConv(d) => d.eval(inputs),
            ConvOp::Col2Im(c) => c.eval(inputs),
        }
    }
}

fn eval_conv(a: &WindowAttrs, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (x, w) = (input(inputs, 0)?, input(inputs, 1)?);
    expect_float("Conv input", x.dtype())?;
    let s = conv_shapes(a, x.shape(), w.shape())?;
    let mut v = s.run(a.group, &x.to_f64_vec(), &w.to_f64_vec(), 0.0, |acc, x, w| acc + x * w)?;
    let bias = bias_values(opt_input(inputs, 2), s.m)?;
    add_bias(&mut v, &bias, s.m, numel(&s.g.grid)?, |a, b| a + b);
    Ok(vec![from_f64(x.dtype(), &s.out_shape(), v)])
}

/// The int conv of `(x - x_zp)` and `(w - w_zp)`; w's zero point is a scalar or one
/// per output channel.
fn integer_conv(
    a: &WindowAttrs,
    x: &Tensor,
    w: &Tensor,
    x_zp: Option<&Tensor>,
    w_zp: Option<&Tensor>,
) -> Result<(ConvShapes, Vec<i64>), OpError> {
    check_integer_inputs(&[x.dtype(), w.dtype()])?;
    let s = conv_shapes(a, x.shape(), w.shape())?;
    let not_int = || OpError::invalid("integer conv inputs must be integers");
    let mut xv = int_values(x).ok_or_else(not_int)?;
    let mut wv = int_values(w).ok_or_else(not_int)?;
    sub_zero_point(&mut xv, x_zp, (1, 1))?;
    let per_m = w.len() / s.m.max(1);
    sub_zero_point(&mut wv, w_zp, (s.m, per_m))?;
    let v = s.run(a.group, &xv, &wv, 0i64, |acc, x, w| acc.wrapping_add(x.wrapping_mul(w)))?;
    Ok((s, v))
}

/// The integer convs take 8-bit integers.
fn check_integer_inputs(types: &[DType]) -> Result<(), OpError> {
    match types.iter().find(|d| !matches!(d, DType::U8 | DType::I8)) {
        Some(d) => Err(OpError::unsupported(format!("integer conv input of type {d}"))),
        None => Ok(()),
    }
}

/// Per-channel or scalar float values (scales).
fn per_channel(t: &Tensor, m: usize, what: &str) -> Result<Vec<f64>, OpError> {
    let v = t.to_f64_vec();
    match v.len() {
        1 => Ok(vec![v[0]; m]),
        l if l == m => Ok(v),
        l => Err(OpError::invalid(format!("{what} has {l} values; 1 or {m} expected"))),
    }
}

fn eval_qlinear_conv(a: &WindowAttrs, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = input(inputs, 0)?;
    let (s, mut v) = integer_conv(a, x, input(inputs, 3)?, opt_input(inputs, 2), opt_input(inputs, 5))?;
    let sp = numel(&s.g.grid)?;
    if let Some(b) = opt_input(inputs, 8) {
        let bv = int_values(b)
            .filter(|b| b.len() == s.m)
            .ok_or_else(|| OpError::invalid("QLinearConv bias must be int32 [M]"))?;
        add_bias(&mut v, &bv, s.m, sp, |a, b| a.wrapping_add(b));
    }
    let x_scale = input(inputs, 1)?.to_f64_vec().first().copied().ok_or_else(|| OpError::invalid("empty x_scale"))?;
    let w_scale = per_channel(input(inputs, 4)?, s.m, "w_scale")?;
    let y_scale = input(inputs, 6)?.to_f64_vec().first().copied().ok_or_else(|| OpError::invalid("empty y_scale"))?;
    let y_zp = opt_input(inputs, 7);
    let zp = y_zp.and_then(|z| z.to_f64_vec().first().copied()).unwrap_or(0.0);
    let dtype = y_zp.map_or(x.dtype(), |z| z.dtype());
    let (lo, hi) = match dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        d => return Err(OpError::unsupported(format!("QLinearConv output of type {d}"))),
    };
    let out: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            let c = (i / sp.max(1)) % s.m;
            (r as f64 * (x_scale * w_scale[c] / y_scale) + zp).clamp(lo, hi).round_ties_even()
        })
        .collect();
    Ok(vec![from_f64(dtype, &s.out_shape(), out)])
}

// ---- ConvTranspose ----

#[derive(Clone, Debug)]
pub struct ConvTranspose {
    pub window: WindowAttrs,
    pub output_padding: Vec<usize>,
    /// The `output_shape` attribute (spatial axes).
    pub output_shape: Option<Vec<usize>>,
}

impl ConvTranspose {
    fn parse(ctx: &NodeCtx) -> Result<Self, OpError> {
        Ok(ConvTranspose {
            window: WindowAttrs::parse(ctx)?,
            output_padding: attr_usizes(ctx, "output_padding", 0)?.unwrap_or_default(),
            output_shape: attr_usizes(ctx, "output_shape", 0)?,
        })
    }

    /// X `[N, C, in...]`, W `[C, M/group, k...]` → (N, C, M, input, geometry over the
    /// input grid, output spatial shape).
    fn shapes(&self, x: &[usize], w: &[usize]) -> Result<(ConvShapes, Vec<usize>), OpError> {
        let a = &self.window;
        let (n, c, input) = split_nc("X", x)?;
        let (cw, mg, wk) = split_nc("W", w)?;
        let ns = input.len();
        if cw != c || c % a.group != 0 || wk.len() != ns {
            return Err(OpError::invalid(format!(
                "ConvTranspose shapes X {x:?} and W {w:?} do not match group {}",
                a.group
            )));
        }
        let kernel = a.kernel(ns, Some(wk))?;
        check_extent("input shape", input)?;
        let mut g = a.geometry(kernel)?;
        let op = match self.output_padding.len() {
            0 => vec![0; ns],
            l if l == ns => self.output_padding.clone(),
            // Some exporters write head and tail values.
            l if l == 2 * ns => self.output_padding[..ns].to_vec(),
            _ => return Err(OpError::invalid("output_padding does not fit the spatial axes")),
        };
        let explicit = self.output_shape.as_ref().map(|s| s[s.len().saturating_sub(ns)..].to_vec());
        if explicit.as_ref().is_some_and(|s| s.len() != ns || s.iter().any(|&d| d >= MAX_EXTENT)) {
            return Err(OpError::invalid("output_shape does not fit the spatial axes"));
        }
        let mut out = vec![0; ns];
        for (i, &len) in input.iter().enumerate() {
            let eff = (g.kernel[i] - 1) * g.dilations[i] + 1;
            let full = g.strides[i] * (len.max(1) - 1) + op[i] + eff;
            match a.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let o = explicit.as_ref().map_or(len * g.strides[i], |e| e[i]);
                    let total = full.saturating_sub(o);
                    // Follows the ONNX reference implementation (SAME_UPPER puts the
                    // smaller half first).
                    g.pad_head[i] = if a.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
                    g.pad_tail[i] = total - g.pad_head[i];
                    out[i] = o;
                }
                _ => {
                    out[i] = match &explicit {
                        Some(e) => e[i],
                        None => full
                            .checked_sub(g.pad_head[i] + g.pad_tail[i])
                            .ok_or_else(|| OpError::invalid("ConvTranspose pads exceed the output"))?,
                    };
                }
            }
        }
        g.grid = input.to_vec();
        let m = mg.checked_mul(a.group).ok_or_else(|| OpError::invalid("ConvTranspose output channels overflow"))?;
        let s = ConvShapes { n, c, m, input: input.to_vec(), g };
        numel(&[vec![n, s.m], out.clone()].concat())?;
        Ok((s, out))
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_float("ConvTranspose input", x.dtype)?;
        let (s, out) = self.shapes(&x.shape, &ctx.input(1)?.shape)?;
        Ok(vec![TypeInfo::new(x.dtype, [vec![s.n, s.m], out].concat())])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, w) = (input(inputs, 0)?, input(inputs, 1)?);
        expect_float("ConvTranspose input", x.dtype())?;
        let (s, out_sp) = self.shapes(x.shape(), w.shape())?;
        let t = taps(&s.g, &out_sp)?;
        let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
        let (sp_in, sp_out, kn) = (numel(&s.input)?, numel(&out_sp)?, numel(&s.g.kernel)?);
        let group = self.window.group;
        let (cg, mg) = (s.c / group, s.m / group);
        let bias = bias_values(opt_input(inputs, 2), s.m)?;
        let mut y = vec![0.0; s.n * s.m * sp_out];
        for b in 0..s.n {
            for ic in 0..s.c {
                let gi = ic / cg.max(1);
                for om in 0..mg {
                    let oc = gi * mg + om;
                    let yb = (b * s.m + oc) * sp_out;
                    let wb = (ic * mg + om) * kn;
                    for p in 0..sp_in {
                        let xval = xv[(b * s.c + ic) * sp_in + p];
                        for (k, tap) in t[p * kn..(p + 1) * kn].iter().enumerate() {
                            if let Some(off) = tap {
                                y[yb + off] += xval * wv[wb + k];
                            }
                        }
                    }
                }
            }
        }
        add_bias(&mut y, &bias, s.m, sp_out, |a, b| a + b);
        Ok(vec![from_f64(x.dtype(), &[vec![s.n, s.m], out_sp].concat(), y)])
    }
}

// ---- Col2Im ----

#[derive(Clone, Debug)]
pub struct Col2Im {
    pub window: WindowAttrs,
}

impl Col2Im {
    fn parse(ctx: &NodeCtx) -> Result<Self, OpError> {
        Ok(Col2Im { window: WindowAttrs::parse(ctx)? })
    }

    /// Input `[N, C * prod(block), L]` → (N, C, geometry over the block grid, image shape).
    pub fn shapes(
        &self,
        x: &[usize],
        image: &[i64],
        block: &[i64],
    ) -> Result<(usize, usize, Geometry, Vec<usize>), OpError> {
        let pos = |v: &[i64], what: &str| {
            v.iter()
                .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0 && d < MAX_ATTR))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| OpError::invalid(format!("{what} must be positive: {v:?}")))
        };
        let (image, kernel) = (pos(image, "image_shape")?, pos(block, "block_shape")?);
        let ns = image.len();
        if kernel.len() != ns || x.len() != 3 {
            return Err(OpError::invalid(format!(
                "Col2Im shapes do not fit: input {x:?}, image {image:?}, block {kernel:?}"
            )));
        }
        let kn = numel(&kernel)?;
        if !x[1].is_multiple_of(kn) {
            return Err(OpError::invalid(format!("Col2Im input channel axis {} is not a multiple of {kn}", x[1])));
        }
        let nw = WindowAttrs { kernel_shape: Some(kernel.clone()), auto_pad: AutoPad::NotSet, ..self.window.clone() };
        let g = conv_geometry(&nw, &image, kernel)?;
        if numel(&g.grid)? != x[2] {
            return Err(OpError::invalid(format!("Col2Im input has {} blocks; the geometry gives {:?}", x[2], g.grid)));
        }
        numel(&[vec![x[0], x[1] / kn], image.clone()].concat())?;
        Ok((x[0], x[1] / kn, g, image))
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        let image = ctx.const_ints(1, "image_shape")?.ok_or_else(|| OpError::invalid("image_shape is required"))?;
        let block = ctx.const_ints(2, "block_shape")?.ok_or_else(|| OpError::invalid("block_shape is required"))?;
        expect_float("Col2Im input", x.dtype)?;
        let (n, c, _, image) = self.shapes(&x.shape, &image, &block)?;
        Ok(vec![TypeInfo::new(x.dtype, [vec![n, c], image].concat())])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        expect_float("Col2Im input", x.dtype())?;
        let ints = |i| super::util::input_ints(inputs, i);
        let (n, c, g, image) = self.shapes(x.shape(), &ints(1)?, &ints(2)?)?;
        let t = taps(&g, &image)?;
        let (kn, l, sp) = (numel(&g.kernel)?, numel(&g.grid)?, numel(&image)?);
        let xv = x.to_f64_vec();
        let mut y = vec![0.0; n * c * sp];
        for b in 0..n {
            for ch in 0..c {
                for k in 0..kn {
                    for p in 0..l {
                        if let Some(off) = t[p * kn + k] {
                            y[(b * c + ch) * sp + off] += xv[((b * c + ch) * kn + k) * l + p];
                        }
                    }
                }
            }
        }
        Ok(vec![from_f64(x.dtype(), &[vec![n, c], image].concat(), y)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_lower_puts_larger_pad_first() {
        // len 4, k 2, s 1: need 1 pad; SAME_LOWER puts it at the head.
        assert_eq!(conv_axis(AutoPad::SameLower, 4, 2, 1, 1, 0, 0).unwrap(), (4, 1, 0));
        assert_eq!(conv_axis(AutoPad::SameUpper, 4, 2, 1, 1, 0, 0).unwrap(), (4, 0, 1));
    }

    fn attrs() -> WindowAttrs {
        WindowAttrs {
            auto_pad: AutoPad::NotSet,
            kernel_shape: None,
            strides: vec![],
            dilations: vec![],
            pads: vec![],
            group: 1,
        }
    }

    #[test]
    fn malformed_shapes_are_errors_not_panics() {
        let x = Tensor::zeros(DType::F32, &[1, 1, 4]);
        for w in [&[1, 1, 0][..], &[1, 2, 2], &[1, 1, 9], &[1, 1]] {
            let w = Tensor::zeros(DType::F32, w);
            assert!(ConvOp::Conv(attrs()).eval(&[Some(&x), Some(&w)]).is_err());
        }
    }

    #[test]
    fn conv_1d_with_bias() {
        let x = Tensor::from_vec(&[1, 1, 4], vec![1.0f32, 2.0, 3.0, 4.0]);
        let w = Tensor::from_vec(&[1, 1, 2], vec![1.0f32, -1.0]);
        let b = Tensor::from_vec(&[1], vec![10.0f32]);
        let y = ConvOp::Conv(attrs()).eval(&[Some(&x), Some(&w), Some(&b)]).unwrap();
        assert_eq!(y[0], Tensor::from_vec(&[1, 1, 3], vec![9.0f32, 9.0, 9.0]));
    }
}
