//! The pool family: AveragePool, MaxPool (with its Indices output), LpPool, the global
//! pools and MaxUnpool.
//!
//! A pool slides a window over `[N, C, spatial...]`: output position `o` and kernel
//! position `k` read input position `o * stride + k * dilation - pad_head` (the conv
//! family's [`taps`]). Windows that reach into padding skip those positions; averages
//! divide by the in-bounds count, or with `count_include_pad` by the count of positions
//! inside the padded extent (never the ceil-mode overhang).

use super::conv::{check_extent, taps, unravel, AutoPad, Geometry, WindowAttrs};
use super::linalg::num::{expect_float, from_f64, numel};
use super::util::{input, input_ints};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum PoolOp {
    AveragePool(Pool),
    MaxPool(Pool),
    LpPool(Pool),
    GlobalAveragePool,
    GlobalMaxPool,
    GlobalLpPool { p: i64 },
    MaxUnpool(WindowAttrs),
}

#[derive(Clone, Debug)]
pub struct Pool {
    pub window: WindowAttrs,
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    /// MaxPool's Indices: 0 row-major, 1 column-major over the spatial axes.
    pub storage_order: i64,
    /// LpPool's norm.
    pub p: i64,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = match ctx.op_type {
        _ if !ctx.is_default_domain() => return None,
        "AveragePool" => Pool::parse(ctx).map(PoolOp::AveragePool),
        "MaxPool" => Pool::parse(ctx).map(PoolOp::MaxPool),
        "LpPool" => Pool::parse(ctx).map(PoolOp::LpPool),
        "GlobalAveragePool" => Ok(PoolOp::GlobalAveragePool),
        "GlobalMaxPool" => Ok(PoolOp::GlobalMaxPool),
        "GlobalLpPool" => lp_norm(ctx).map(|p| PoolOp::GlobalLpPool { p }),
        "MaxUnpool" => WindowAttrs::parse(ctx).map(PoolOp::MaxUnpool),
        _ => return None,
    };
    Some(op.map(Op::Pool))
}

/// LpPool's `p` (an int; opset 1 wrote it as a float).
fn lp_norm(ctx: &NodeCtx) -> Result<i64, OpError> {
    let p = if ctx.opset < 2 { ctx.float_or("p", 2.0)? as i64 } else { ctx.int_or("p", 2)? };
    if !(1..=64).contains(&p) {
        return Err(OpError::unsupported(format!("LpPool with p = {p} (edgec handles 1..=64)")));
    }
    Ok(p)
}

impl Pool {
    fn parse(ctx: &NodeCtx) -> Result<Self, OpError> {
        let window = WindowAttrs::parse(ctx)?;
        if window.kernel_shape.is_none() {
            return Err(OpError::invalid("required attribute 'kernel_shape' is missing"));
        }
        let storage_order = ctx.int_or("storage_order", 0)?;
        if !(0..=1).contains(&storage_order) {
            return Err(OpError::invalid(format!("storage_order must be 0 or 1, got {storage_order}")));
        }
        Ok(Pool {
            window,
            ceil_mode: ctx.int_or("ceil_mode", 0)? != 0,
            count_include_pad: ctx.int_or("count_include_pad", 0)? != 0,
            storage_order,
            p: if ctx.op_type == "LpPool" { lp_norm(ctx)? } else { 2 },
        })
    }

    /// The window geometry over the output grid for spatial input shape `input`.
    fn geometry(&self, input: &[usize]) -> Result<Geometry, OpError> {
        let a = &self.window;
        let n = input.len();
        let kernel = a.kernel(n, None)?;
        check_extent("input shape", input)?;
        let mut g = a.geometry(kernel)?;
        for (i, &len) in input.iter().enumerate() {
            let s = g.strides[i];
            let eff = (g.kernel[i] - 1) * g.dilations[i] + 1;
            let bad = || OpError::invalid(format!("pool window of {eff} does not fit an axis of {len}"));
            let out = match a.auto_pad {
                AutoPad::NotSet => {
                    let span = (len + g.pad_head[i] + g.pad_tail[i]).checked_sub(eff).ok_or_else(bad)?;
                    let mut out = if self.ceil_mode { span.div_ceil(s) + 1 } else { span / s + 1 };
                    // A last window that would start in the tail padding is dropped.
                    if self.ceil_mode && (out - 1) * s >= len + g.pad_head[i] {
                        out -= 1;
                    }
                    out
                }
                AutoPad::Valid => {
                    g.pad_head[i] = 0;
                    g.pad_tail[i] = 0;
                    len.checked_sub(eff).ok_or_else(bad)? / s + 1
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = len.div_ceil(s);
                    let need = ((out.max(1) - 1) * s + eff).saturating_sub(len);
                    g.pad_head[i] = if a.auto_pad == AutoPad::SameUpper { need / 2 } else { need - need / 2 };
                    g.pad_tail[i] = need - g.pad_head[i];
                    out
                }
            };
            g.grid.push(out);
        }
        numel(&g.grid)?;
        Ok(g)
    }

    /// For each (output, kernel) pair: whether the position lies inside the padded
    /// extent (the `count_include_pad` divisor counts those).
    fn in_padded_extent(g: &Geometry, input: &[usize]) -> Result<Vec<usize>, OpError> {
        let (gn, kn) = (numel(&g.grid)?, numel(&g.kernel)?);
        let mut counts = Vec::with_capacity(gn);
        let (mut gi, mut ki) = (vec![0; g.grid.len()], vec![0; g.kernel.len()]);
        for o in 0..gn {
            unravel(o, &g.grid, &mut gi);
            let mut c = 0;
            for k in 0..kn {
                unravel(k, &g.kernel, &mut ki);
                let inside = (0..input.len())
                    .all(|a| gi[a] * g.strides[a] + ki[a] * g.dilations[a] < input[a] + g.pad_head[a] + g.pad_tail[a]);
                c += inside as usize;
            }
            counts.push(c);
        }
        Ok(counts)
    }

    /// `[N, C, grid...]`, checked against overflow.
    fn out_shape(x: &[usize], g: &Geometry) -> Result<Vec<usize>, OpError> {
        let s = [x[..2].to_vec(), g.grid.clone()].concat();
        numel(&s)?;
        Ok(s)
    }

    fn infer(&self, ctx: &InferCtx, max: bool) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        check_pool_type(x.dtype, max)?;
        let (_, _, sp) = split(&x.shape)?;
        let shape = Self::out_shape(&x.shape, &self.geometry(sp)?)?;
        let mut out = vec![TypeInfo::new(x.dtype, shape.clone())];
        if max && ctx.n_outputs > 1 {
            out.push(TypeInfo::new(DType::I64, shape));
        }
        Ok(out)
    }

    /// Max pooling: values and flat input indices of the (first) maximum.
    fn eval_max(&self, x: &Tensor) -> Result<Vec<Tensor>, OpError> {
        check_pool_type(x.dtype(), true)?;
        let (n, c, sp) = split(x.shape())?;
        let g = self.geometry(sp)?;
        let shape = Self::out_shape(x.shape(), &g)?;
        let t = taps(&g, sp)?;
        let (sp_in, sp_out, kn) = (numel(sp)?, numel(&g.grid)?, numel(&g.kernel)?);
        let xv = x.to_f64_vec();
        let col_strides = col_major_strides(sp);
        let mut idx_sp = vec![0; sp.len()];
        let (mut y, mut ind) = (Vec::with_capacity(n * c * sp_out), Vec::with_capacity(n * c * sp_out));
        for plane in 0..n * c {
            let base = plane * sp_in;
            for o in 0..sp_out {
                let best = t[o * kn..(o + 1) * kn].iter().flatten().filter(|&&off| !xv[base + off].is_nan()).fold(
                    None::<usize>,
                    |b, &off| match b {
                        Some(b) if xv[base + b] >= xv[base + off] => Some(b),
                        _ => Some(off),
                    },
                );
                match best {
                    Some(off) => {
                        y.push(xv[base + off]);
                        let flat = if self.storage_order == 0 {
                            off
                        } else {
                            unravel(off, sp, &mut idx_sp);
                            idx_sp.iter().zip(&col_strides).map(|(i, s)| i * s).sum()
                        };
                        ind.push((base + flat) as i64);
                    }
                    // Only padding under the window (the reference leaves 0 and -1).
                    None => {
                        y.push(0.0);
                        ind.push(-1);
                    }
                }
            }
        }
        Ok(vec![from_f64(x.dtype(), &shape, y), Tensor::from_vec(&shape, ind)])
    }

    /// Average (`p` = None) or Lp pooling.
    fn eval_avg(&self, x: &Tensor, p: Option<i64>) -> Result<Vec<Tensor>, OpError> {
        check_pool_type(x.dtype(), false)?;
        let (n, c, sp) = split(x.shape())?;
        let g = self.geometry(sp)?;
        let shape = Self::out_shape(x.shape(), &g)?;
        let t = taps(&g, sp)?;
        let padded = Self::in_padded_extent(&g, sp)?;
        let (sp_in, sp_out, kn) = (numel(sp)?, numel(&g.grid)?, numel(&g.kernel)?);
        let xv = x.to_f64_vec();
        let mut y = Vec::with_capacity(n * c * sp_out);
        for plane in 0..n * c {
            let base = plane * sp_in;
            for o in 0..sp_out {
                let window = t[o * kn..(o + 1) * kn].iter().flatten().map(|&off| xv[base + off]);
                y.push(match p {
                    None => {
                        let (sum, cnt) = window.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                        sum / if self.count_include_pad { padded[o] } else { cnt } as f64
                    }
                    // The reference scales the padded-extent mean of |x|^p by the kernel size.
                    Some(p) => {
                        let sum: f64 = window.map(|v| v.abs().powi(p as i32)).sum();
                        (sum * kn as f64 / padded[o] as f64).powf(1.0 / p as f64)
                    }
                });
            }
        }
        Ok(vec![from_f64(x.dtype(), &shape, y)])
    }
}

/// Column-major strides of a spatial shape (MaxPool `storage_order = 1`).
fn col_major_strides(sp: &[usize]) -> Vec<usize> {
    let mut s = vec![1; sp.len()];
    for i in 1..sp.len() {
        s[i] = s[i - 1] * sp[i - 1];
    }
    s
}

fn split(shape: &[usize]) -> Result<(usize, usize, &[usize]), OpError> {
    match shape {
        [n, c, sp @ ..] if !sp.is_empty() => Ok((*n, *c, sp)),
        _ => Err(OpError::invalid(format!("pool input must be [N, C, spatial...], got {shape:?}"))),
    }
}

/// Max pools also take 8-bit integers; the others only floats.
fn check_pool_type(d: DType, max: bool) -> Result<(), OpError> {
    if max && matches!(d, DType::I8 | DType::U8) {
        return Ok(());
    }
    expect_float("pool input", d)
}

/// Global pools: one value per `[n, c]` plane.
fn eval_global(x: &Tensor, max: bool, f: impl Fn(&[f64]) -> f64) -> Result<Vec<Tensor>, OpError> {
    check_pool_type(x.dtype(), max)?;
    let (n, c, sp) = split(x.shape())?;
    let xv = x.to_f64_vec();
    let len = numel(sp)?;
    let y: Vec<f64> = if len == 0 { vec![f(&[]); n * c] } else { xv.chunks(len).map(&f).collect() };
    let shape = [vec![n, c], vec![1; sp.len()]].concat();
    Ok(vec![from_f64(x.dtype(), &shape, y)])
}

impl Semantics for PoolOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            PoolOp::AveragePool(p) | PoolOp::LpPool(p) => p.infer(ctx, false),
            PoolOp::MaxPool(p) => p.infer(ctx, true),
            PoolOp::GlobalAveragePool | PoolOp::GlobalMaxPool | PoolOp::GlobalLpPool { .. } => {
                let x = ctx.input(0)?;
                check_pool_type(x.dtype, matches!(self, PoolOp::GlobalMaxPool))?;
                let (n, c, sp) = split(&x.shape)?;
                Ok(vec![TypeInfo::new(x.dtype, [vec![n, c], vec![1; sp.len()]].concat())])
            }
            PoolOp::MaxUnpool(a) => {
                let x = ctx.input(0)?;
                let shape = match ctx.const_ints(2, "output_shape")? {
                    Some(s) => explicit_shape(&s)?,
                    None => unpool_shape(a, &x.shape)?,
                };
                Ok(vec![TypeInfo::new(x.dtype, shape)])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        match self {
            PoolOp::AveragePool(p) => p.eval_avg(x, None),
            PoolOp::LpPool(p) => p.eval_avg(x, Some(p.p)),
            PoolOp::MaxPool(p) => p.eval_max(x),
            PoolOp::GlobalAveragePool => eval_global(x, false, |v| v.iter().sum::<f64>() / v.len() as f64),
            PoolOp::GlobalMaxPool => {
                eval_global(x, true, |v| v.iter().copied().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max))
            }
            PoolOp::GlobalLpPool { p } => {
                let p = *p;
                eval_global(x, false, move |v| {
                    v.iter().map(|x| x.abs().powi(p as i32)).sum::<f64>().powf(1.0 / p as f64)
                })
            }
            PoolOp::MaxUnpool(a) => eval_max_unpool(a, inputs),
        }
    }
}

// ---- MaxUnpool ----

/// The output shape MaxUnpool infers: `(in - 1) * stride - pads + kernel`.
fn unpool_shape(a: &WindowAttrs, x: &[usize]) -> Result<Vec<usize>, OpError> {
    let (n, c, sp) = split(x)?;
    let kernel = a.kernel(sp.len(), None)?;
    check_extent("input shape", sp)?;
    let g = a.geometry(kernel)?;
    let mut out = vec![n, c];
    for (i, &len) in sp.iter().enumerate() {
        let full = (len.max(1) - 1) * g.strides[i] + g.kernel[i];
        out.push(
            full.checked_sub(g.pad_head[i] + g.pad_tail[i])
                .ok_or_else(|| OpError::invalid("MaxUnpool pads exceed the output"))?,
        );
    }
    numel(&out)?;
    Ok(out)
}

fn explicit_shape(s: &[i64]) -> Result<Vec<usize>, OpError> {
    let v = s
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| OpError::invalid(format!("output_shape has a negative dimension: {s:?}")))?;
    numel(&v)?;
    Ok(v)
}

/// Scatters X into a zero tensor of the inferred shape at `indices`, then places that
/// at the origin of the requested `output_shape` (as the ONNX reference does).
fn eval_max_unpool(a: &WindowAttrs, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = input(inputs, 0)?;
    let idx = input_ints(inputs, 1)?;
    let inferred = unpool_shape(a, x.shape())?;
    let shape = match inputs.get(2).copied().flatten() {
        Some(_) => explicit_shape(&input_ints(inputs, 2)?)?,
        None => inferred.clone(),
    };
    if idx.len() != x.len() || shape.len() != inferred.len() {
        return Err(OpError::invalid("MaxUnpool indices or output_shape do not match X"));
    }
    let total = numel(&inferred)?;
    let xv = x.to_f64_vec();
    let mut y = vec![0.0; total];
    for (&i, &v) in idx.iter().zip(&xv) {
        let i = usize::try_from(i)
            .ok()
            .filter(|&i| i < total)
            .ok_or_else(|| OpError::invalid(format!("MaxUnpool index {i} is out of range")))?;
        y[i] = v;
    }
    let out_len = numel(&shape)?;
    let mut out = vec![0.0; out_len];
    let mut at = vec![0; inferred.len()];
    let ostr = super::linalg::num::strides(&shape);
    for (i, &v) in y.iter().enumerate() {
        unravel(i, &inferred, &mut at);
        if at.iter().zip(&shape).all(|(a, s)| a < s) {
            out[at.iter().zip(&ostr).map(|(a, s)| a * s).sum::<usize>()] = v;
        }
    }
    Ok(vec![from_f64(x.dtype(), &shape, out)])
}
