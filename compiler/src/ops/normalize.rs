//! The normalize family: softmax-like ops (`Softmax`, `LogSoftmax`, `Hardmax`), the
//! losses built on them (`NegativeLogLikelihoodLoss`, `SoftmaxCrossEntropyLoss`) and
//! the normalisations (`LayerNormalization`, `RMSNormalization`, `BatchNormalization`,
//! `InstanceNormalization`, `GroupNormalization`, `LpNormalization`, `LRN`,
//! `MeanVarianceNormalization`).
//!
//! All of them are float-only; evaluation computes in `f64` and casts back.

use super::reduce::{from_floats, groups, lanes};
use super::util::{broadcast_shapes, broadcast_to, expect_dtype, input, norm_axes, norm_axis, opt_input, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum NormalizeOp {
    /// `Softmax`, `LogSoftmax`, `Hardmax`. Before opset 13 the input is coerced to 2D
    /// at `axis` (`legacy_2d`) and the op runs over everything from `axis` on; from 13
    /// it runs along the single `axis`.
    Softmax { kind: SoftmaxKind, axis: i64, legacy_2d: bool },
    Loss(Loss),
    /// Normalise over axes `axis..`; outputs Y and optionally Mean and InvStdDev
    /// (in `stash` type).
    LayerNorm { axis: i64, epsilon: f64, stash: DType },
    /// `RMSNormalization` over axes `axis..`.
    RmsNorm { axis: i64, epsilon: f64 },
    /// `training` uses the batch statistics and also outputs the running mean/var.
    BatchNorm { epsilon: f64, momentum: f64, training: bool },
    InstanceNorm { epsilon: f64 },
    /// `per_channel`: scale/bias have one value per channel (opset 21) instead of one
    /// per group (opset 18).
    GroupNorm { num_groups: i64, epsilon: f64, per_channel: bool },
    /// `p` is 1 or 2.
    LpNorm { axis: i64, p: i64 },
    Lrn { alpha: f64, beta: f64, bias: f64, size: usize },
    Mvn { axes: Vec<i64> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// `NegativeLogLikelihoodLoss` (on log-probabilities) or `SoftmaxCrossEntropyLoss`
/// (`softmax`: on scores, with an optional log_prob output).
#[derive(Clone, Debug)]
pub struct Loss {
    pub softmax: bool,
    pub reduction: Reduction,
    pub ignore_index: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Sum,
    Mean,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let r = match ctx.op_type {
        "Softmax" => parse_softmax(ctx, SoftmaxKind::Softmax),
        "LogSoftmax" => parse_softmax(ctx, SoftmaxKind::LogSoftmax),
        "Hardmax" => parse_softmax(ctx, SoftmaxKind::Hardmax),
        "NegativeLogLikelihoodLoss" => parse_loss(ctx, false),
        "SoftmaxCrossEntropyLoss" => parse_loss(ctx, true),
        "LayerNormalization" => parse_layer_norm(ctx),
        "RMSNormalization" => parse_rms_norm(ctx),
        "BatchNormalization" => parse_batch_norm(ctx),
        "InstanceNormalization" => epsilon(ctx).map(|epsilon| NormalizeOp::InstanceNorm { epsilon }),
        "GroupNormalization" => parse_group_norm(ctx),
        "LpNormalization" => parse_lp_norm(ctx),
        "LRN" => parse_lrn(ctx),
        "MeanVarianceNormalization" => {
            ctx.ints("axes").map(|a| NormalizeOp::Mvn { axes: a.unwrap_or_else(|| vec![0, 2, 3]) })
        }
        _ => return None,
    };
    Some(r.map(Op::Normalize))
}

fn epsilon(ctx: &NodeCtx) -> Result<f64, OpError> {
    Ok(ctx.float_or("epsilon", 1e-5)? as f64)
}

fn parse_softmax(ctx: &NodeCtx, kind: SoftmaxKind) -> Result<NormalizeOp, OpError> {
    let legacy_2d = ctx.opset < 13;
    let axis = ctx.int_or("axis", if legacy_2d { 1 } else { -1 })?;
    Ok(NormalizeOp::Softmax { kind, axis, legacy_2d })
}

fn parse_loss(ctx: &NodeCtx, softmax: bool) -> Result<NormalizeOp, OpError> {
    let reduction = match ctx.string_or("reduction", "mean")?.as_str() {
        "none" => Reduction::None,
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        r => return Err(OpError::invalid(format!("reduction '{r}' is not one of none, sum, mean"))),
    };
    Ok(NormalizeOp::Loss(Loss { softmax, reduction, ignore_index: ctx.int("ignore_index")? }))
}

/// The float type a `stash_type` attribute names.
fn stash_type(ctx: &NodeCtx) -> Result<DType, OpError> {
    let code = ctx.int_or("stash_type", 1)?;
    match i32::try_from(code).ok().and_then(DType::from_onnx) {
        Some(d) if FLOATS.contains(&d) => Ok(d),
        _ => Err(OpError::unsupported(format!("stash_type {code} (edgec handles float types)"))),
    }
}

fn parse_layer_norm(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    Ok(NormalizeOp::LayerNorm { axis: ctx.int_or("axis", -1)?, epsilon: epsilon(ctx)?, stash: stash_type(ctx)? })
}

fn parse_rms_norm(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    // The statistics are computed in f64 whatever the stash type; only check it is valid.
    stash_type(ctx)?;
    Ok(NormalizeOp::RmsNorm { axis: ctx.int_or("axis", -1)?, epsilon: epsilon(ctx)? })
}

fn parse_batch_norm(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    let training = if ctx.opset >= 14 {
        ctx.int_or("training_mode", 0)? != 0
    } else {
        // Older opsets declare the training outputs as optional extras of one node;
        // edgec only runs those models in inference mode (`is_test`, opset 6 and
        // before, defaults to training).
        let is_test = ctx.int_or("is_test", if ctx.opset < 7 { 0 } else { 1 })? != 0;
        if (1..ctx.n_outputs()).any(|i| ctx.has_output(i)) || !is_test {
            return Err(OpError::unsupported("BatchNormalization training outputs before opset 14"));
        }
        if ctx.int_or("spatial", 1)? == 0 {
            return Err(OpError::unsupported("BatchNormalization with spatial=0"));
        }
        false
    };
    Ok(NormalizeOp::BatchNorm { epsilon: epsilon(ctx)?, momentum: ctx.float_or("momentum", 0.9)? as f64, training })
}

fn parse_group_norm(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    if ctx.opset >= 21 {
        stash_type(ctx)?;
    }
    Ok(NormalizeOp::GroupNorm {
        num_groups: ctx.required("num_groups", ctx.int("num_groups"))?,
        epsilon: epsilon(ctx)?,
        per_channel: ctx.opset >= 21,
    })
}

fn parse_lp_norm(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    let p = ctx.int_or("p", 2)?;
    if p != 1 && p != 2 {
        return Err(OpError::invalid(format!("LpNormalization p={p} must be 1 or 2")));
    }
    Ok(NormalizeOp::LpNorm { axis: ctx.int_or("axis", -1)?, p })
}

fn parse_lrn(ctx: &NodeCtx) -> Result<NormalizeOp, OpError> {
    let size = ctx.required("size", ctx.int("size"))?;
    if size < 1 {
        return Err(OpError::invalid(format!("LRN size {size} must be positive")));
    }
    Ok(NormalizeOp::Lrn {
        alpha: ctx.float_or("alpha", 1e-4)? as f64,
        beta: ctx.float_or("beta", 0.75)? as f64,
        bias: ctx.float_or("bias", 1.0)? as f64,
        size: size as usize,
    })
}

impl Semantics for NormalizeOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_dtype("input", x, FLOATS)?;
        match self {
            NormalizeOp::Softmax { axis, .. } | NormalizeOp::LpNorm { axis, .. } => {
                norm_axis(*axis, x.rank())?;
                Ok(vec![x.clone()])
            }
            NormalizeOp::Loss(l) => l.infer(ctx),
            NormalizeOp::LayerNorm { axis, stash, .. } => {
                let a = norm_axis(*axis, x.rank())?;
                check_broadcasts_to(ctx.input(1)?, &x.shape)?;
                if let Some(b) = ctx.opt_input(2) {
                    check_broadcasts_to(b, &x.shape)?;
                }
                let stats: Vec<usize> = (0..x.rank()).map(|d| if d < a { x.shape[d] } else { 1 }).collect();
                let stats = TypeInfo::new(*stash, stats);
                Ok(vec![x.clone(), stats.clone(), stats])
            }
            NormalizeOp::RmsNorm { axis, .. } => {
                norm_axis(*axis, x.rank())?;
                check_broadcasts_to(ctx.input(1)?, &x.shape)?;
                Ok(vec![x.clone()])
            }
            NormalizeOp::BatchNorm { training, .. } => {
                let c = channels(&x.shape)?;
                for i in 1..5 {
                    check_per_channel(ctx.input(i)?, c, i)?;
                }
                let mut out = vec![x.clone()];
                if *training {
                    out.extend([ctx.input(3)?.clone(), ctx.input(4)?.clone()]);
                }
                Ok(out)
            }
            NormalizeOp::InstanceNorm { .. } => {
                let c = channels(&x.shape)?;
                check_per_channel(ctx.input(1)?, c, 1)?;
                check_per_channel(ctx.input(2)?, c, 2)?;
                Ok(vec![x.clone()])
            }
            NormalizeOp::GroupNorm { num_groups, per_channel, .. } => {
                let c = channels(&x.shape)?;
                let g = group_count(*num_groups, c)?;
                let want = if *per_channel { c } else { g };
                check_per_channel(ctx.input(1)?, want, 1)?;
                check_per_channel(ctx.input(2)?, want, 2)?;
                Ok(vec![x.clone()])
            }
            NormalizeOp::Lrn { .. } => {
                channels(&x.shape)?;
                Ok(vec![x.clone()])
            }
            NormalizeOp::Mvn { axes } => {
                norm_axes(axes, x.rank())?;
                Ok(vec![x.clone()])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        expect_dtype("input", &x.type_info(), FLOATS)?;
        let shape = x.shape();
        let dtype = x.dtype();
        let v = x.to_f64_vec();
        let out = |y: Vec<f64>| from_floats(dtype, shape, y);
        match self {
            NormalizeOp::Softmax { kind, axis, legacy_2d } => {
                let a = norm_axis(*axis, x.rank())?;
                let (outer, n, inner) = if *legacy_2d {
                    (shape[..a].iter().product(), shape[a..].iter().product(), 1)
                } else {
                    lanes(shape, a)
                };
                Ok(vec![out(map_lanes(&v, outer, n, inner, |l| softmax_lane(*kind, l)))])
            }
            NormalizeOp::Loss(l) => l.eval(inputs),
            NormalizeOp::LayerNorm { axis, epsilon, stash } => {
                let a = norm_axis(*axis, x.rank())?;
                let scale = broadcast_f64(input(inputs, 1)?, shape)?;
                let bias = opt_input(inputs, 2).map(|b| broadcast_f64(b, shape)).transpose()?;
                let (y, mean, inv_std) = layer_norm(&v, shape, a, *epsilon, &scale, bias.as_deref(), false);
                let stats: Vec<usize> = (0..x.rank()).map(|d| if d < a { shape[d] } else { 1 }).collect();
                Ok(vec![out(y), from_floats(*stash, &stats, mean), from_floats(*stash, &stats, inv_std)])
            }
            NormalizeOp::RmsNorm { axis, epsilon } => {
                let a = norm_axis(*axis, x.rank())?;
                let scale = broadcast_f64(input(inputs, 1)?, shape)?;
                Ok(vec![out(layer_norm(&v, shape, a, *epsilon, &scale, None, true).0)])
            }
            NormalizeOp::BatchNorm { epsilon, momentum, training } => {
                eval_batch_norm(x, inputs, *epsilon, *momentum, *training)
            }
            NormalizeOp::InstanceNorm { epsilon } => {
                let c = channels(shape)?;
                let (scale, bias) = per_channel_params(inputs, c)?;
                Ok(vec![out(group_norm(&v, shape, c, *epsilon, &scale, &bias))])
            }
            NormalizeOp::GroupNorm { num_groups, epsilon, per_channel } => {
                let c = channels(shape)?;
                let g = group_count(*num_groups, c)?;
                let (mut scale, mut bias) = per_channel_params(inputs, if *per_channel { c } else { g })?;
                if !*per_channel {
                    // One value per group: repeat it for each channel of the group.
                    scale = (0..c).map(|ch| scale[ch / (c / g)]).collect();
                    bias = (0..c).map(|ch| bias[ch / (c / g)]).collect();
                }
                Ok(vec![out(group_norm(&v, shape, g, *epsilon, &scale, &bias))])
            }
            NormalizeOp::LpNorm { axis, p } => {
                let (outer, n, inner) = lanes(shape, norm_axis(*axis, x.rank())?);
                Ok(vec![out(map_lanes(&v, outer, n, inner, |l| lp_lane(*p, l)))])
            }
            NormalizeOp::Lrn { alpha, beta, bias, size } => {
                channels(shape)?;
                Ok(vec![out(lrn(&v, shape, *alpha, *beta, *bias, *size))])
            }
            NormalizeOp::Mvn { axes } => Ok(vec![out(mvn(&v, shape, &norm_axes(axes, x.rank())?)?)]),
        }
    }
}

// ---------------------------------------------------------------------------------
// Shared helpers

/// Applies `f` to every lane (`n` elements spaced `inner` apart) and writes the results
/// back in place of the lane.
fn map_lanes(v: &[f64], outer: usize, n: usize, inner: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut out = v.to_vec();
    let mut lane = Vec::with_capacity(n);
    for o in 0..outer {
        for j in 0..inner {
            lane.clear();
            lane.extend((0..n).map(|i| v[(o * n + i) * inner + j]));
            for (i, y) in f(&lane).into_iter().enumerate() {
                out[(o * n + i) * inner + j] = y;
            }
        }
    }
    out
}

fn check_broadcasts_to(t: &TypeInfo, shape: &[usize]) -> Result<(), OpError> {
    if broadcast_shapes(&t.shape, shape)? != shape {
        return Err(OpError::invalid(format!("shape {:?} does not broadcast to {shape:?}", t.shape)));
    }
    Ok(())
}

/// The values of `t` broadcast to `shape`, row-major.
fn broadcast_f64(t: &Tensor, shape: &[usize]) -> Result<Vec<f64>, OpError> {
    Ok(broadcast_to(&t.to_f64_array(), shape)?.iter().copied().collect())
}

/// The channel count of an `N x C x ...` input.
fn channels(shape: &[usize]) -> Result<usize, OpError> {
    match shape {
        [_, c, ..] => Ok(*c),
        _ => Err(OpError::invalid(format!("input of shape {shape:?} needs a batch and a channel axis"))),
    }
}

fn check_per_channel(t: &TypeInfo, c: usize, i: usize) -> Result<(), OpError> {
    if t.shape != [c] {
        return Err(OpError::invalid(format!("input {i} has shape {:?}, expected [{c}]", t.shape)));
    }
    Ok(())
}

fn per_channel_params(inputs: &[Option<&Tensor>], c: usize) -> Result<(Vec<f64>, Vec<f64>), OpError> {
    let get = |i: usize| -> Result<Vec<f64>, OpError> {
        let t = input(inputs, i)?;
        check_per_channel(&t.type_info(), c, i)?;
        Ok(t.to_f64_vec())
    };
    Ok((get(1)?, get(2)?))
}

fn group_count(num_groups: i64, c: usize) -> Result<usize, OpError> {
    match usize::try_from(num_groups) {
        Ok(g) if g > 0 && c.is_multiple_of(g) => Ok(g),
        _ => Err(OpError::invalid(format!("num_groups {num_groups} does not divide the {c} channels"))),
    }
}

// ---------------------------------------------------------------------------------
// Softmax, LogSoftmax, Hardmax

fn softmax_lane(kind: SoftmaxKind, l: &[f64]) -> Vec<f64> {
    let max = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match kind {
        SoftmaxKind::Hardmax => {
            // One-hot at the first maximum (the first NaN if any, as numpy's argmax).
            let at = l.iter().position(|v| v.is_nan()).or_else(|| l.iter().position(|&v| v == max));
            (0..l.len()).map(|i| if Some(i) == at { 1.0 } else { 0.0 }).collect()
        }
        SoftmaxKind::Softmax => {
            let e: Vec<f64> = l.iter().map(|v| (v - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        }
        SoftmaxKind::LogSoftmax => {
            let s: f64 = l.iter().map(|v| (v - max).exp()).sum();
            l.iter().map(|v| v - max - s.ln()).collect()
        }
    }
}

// ---------------------------------------------------------------------------------
// NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss

impl Loss {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        let t = ctx.input(1)?;
        self.check_shapes(&x.shape, &t.shape, ctx.opt_input(2).map(|w| w.shape.as_slice()))?;
        if !t.dtype.is_int() || t.dtype.is_packed() {
            return Err(OpError::invalid(format!("loss target must be an integer tensor, not {}", t.dtype)));
        }
        let loss_shape = if self.reduction == Reduction::None { t.shape.clone() } else { vec![] };
        let mut out = vec![TypeInfo::new(x.dtype, loss_shape)];
        if self.softmax {
            out.push(x.clone());
        }
        Ok(out)
    }

    /// Input `N x C x d...`, target `N x d...`, weight `C`.
    fn check_shapes(&self, x: &[usize], t: &[usize], w: Option<&[usize]>) -> Result<(), OpError> {
        let ok = x.len() >= 2 && t.len() + 1 == x.len() && t[0] == x[0] && t[1..] == x[2..];
        if !ok {
            return Err(OpError::invalid(format!("loss input {x:?} and target {t:?} do not match (N x C x d..., N x d...)")));
        }
        if let Some(w) = w {
            if w != [x[1]] {
                return Err(OpError::invalid(format!("loss weight has shape {w:?}, expected [{}]", x[1])));
            }
        }
        Ok(())
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        let target = input(inputs, 1)?;
        let weight = opt_input(inputs, 2);
        self.check_shapes(x.shape(), target.shape(), weight.map(|w| w.shape()))?;
        let targets = target.to_i64_vec().ok_or_else(|| OpError::invalid("loss target must be an integer tensor"))?;
        let weight = weight.map(|w| w.to_f64_vec());
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let d = targets.len().checked_div(n).unwrap_or(0);
        let mut logp = x.to_f64_vec();
        if self.softmax {
            logp = map_lanes(&logp, n, c, d, |l| softmax_lane(SoftmaxKind::LogSoftmax, l));
        }
        let (mut losses, mut weights) = (Vec::with_capacity(targets.len()), Vec::with_capacity(targets.len()));
        for (k, &t) in targets.iter().enumerate() {
            if Some(t) == self.ignore_index {
                losses.push(0.0);
                weights.push(0.0);
                continue;
            }
            let cls = usize::try_from(t).ok().filter(|&t| t < c);
            let cls = cls.ok_or_else(|| OpError::invalid(format!("loss target {t} is outside 0..{c}")))?;
            let w = weight.as_ref().map_or(1.0, |w| w[cls]);
            let (i, j) = (k / d, k % d);
            losses.push(-logp[(i * c + cls) * d + j] * w);
            weights.push(w);
        }
        let dtype = x.dtype();
        let loss = match self.reduction {
            Reduction::None => from_floats(dtype, target.shape(), losses),
            Reduction::Sum => from_floats(dtype, &[], vec![losses.iter().sum()]),
            // The weighted mean: ignored targets count neither in the sum nor the divisor.
            Reduction::Mean => from_floats(dtype, &[], vec![losses.iter().sum::<f64>() / weights.iter().sum::<f64>()]),
        };
        let mut out = vec![loss];
        if self.softmax {
            out.push(from_floats(dtype, x.shape(), logp));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------
// LayerNormalization, RMSNormalization

/// Normalises each row of the `[prod(shape[..axis]), prod(shape[axis..])]` view;
/// `rms` skips the mean subtraction. Returns Y and the per-row mean and 1/std.
fn layer_norm(
    v: &[f64],
    shape: &[usize],
    axis: usize,
    eps: f64,
    scale: &[f64],
    bias: Option<&[f64]>,
    rms: bool,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let cols: usize = shape[axis..].iter().product();
    let rows: usize = shape[..axis].iter().product();
    let mut y = vec![0.0; v.len()];
    let (mut means, mut inv_stds) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for r in 0..rows {
        let row = &v[r * cols..(r + 1) * cols];
        let mean = if rms { 0.0 } else { row.iter().sum::<f64>() / cols as f64 };
        let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / cols as f64;
        let inv_std = 1.0 / (var + eps).sqrt();
        for (k, x) in row.iter().enumerate() {
            let p = r * cols + k;
            y[p] = (x - mean) * inv_std * scale[p] + bias.map_or(0.0, |b| b[p]);
        }
        means.push(mean);
        inv_stds.push(inv_std);
    }
    (y, means, inv_stds)
}

// ---------------------------------------------------------------------------------
// BatchNormalization, InstanceNormalization, GroupNormalization

fn eval_batch_norm(x: &Tensor, inputs: &[Option<&Tensor>], eps: f64, momentum: f64, training: bool) -> Result<Vec<Tensor>, OpError> {
    let shape = x.shape();
    let c = channels(shape)?;
    let mut p = Vec::with_capacity(4);
    for i in 1..5 {
        let t = input(inputs, i)?;
        check_per_channel(&t.type_info(), c, i)?;
        p.push(t.to_f64_vec());
    }
    let v = x.to_f64_vec();
    let (outer, _, inner) = lanes(shape, 1);
    let (mean, var) = if training {
        // Batch statistics per channel (population variance).
        let mut stats = Vec::with_capacity(c);
        for ch in 0..c {
            let xs: Vec<f64> = (0..outer).flat_map(|o| (0..inner).map(move |j| (o * c + ch) * inner + j)).map(|i| v[i]).collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            stats.push((m, xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64));
        }
        stats.into_iter().unzip()
    } else {
        (p[2].clone(), p[3].clone())
    };
    let y: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let ch = (i / inner) % c;
            p[0][ch] * (x - mean[ch]) / (var[ch] + eps).sqrt() + p[1][ch]
        })
        .collect();
    let mut out = vec![from_floats(x.dtype(), shape, y)];
    if training {
        let run = |old: &[f64], new: &[f64]| old.iter().zip(new).map(|(o, n)| o * momentum + n * (1.0 - momentum)).collect();
        out.push(from_floats(input(inputs, 3)?.dtype(), &[c], run(&p[2], &mean)));
        out.push(from_floats(input(inputs, 4)?.dtype(), &[c], run(&p[3], &var)));
    }
    Ok(out)
}

/// Normalises each (instance, group of `c / g` channels) over its channels and spatial
/// extent, then applies the per-channel `scale` and `bias`.
fn group_norm(v: &[f64], shape: &[usize], g: usize, eps: f64, scale: &[f64], bias: &[f64]) -> Vec<f64> {
    let c = shape[1];
    if c == 0 {
        return Vec::new();
    }
    let spatial: usize = shape[2..].iter().product();
    let block = c / g * spatial;
    let mut y = vec![0.0; v.len()];
    for (b, chunk) in v.chunks(block.max(1)).enumerate() {
        let mean = chunk.iter().sum::<f64>() / chunk.len() as f64;
        let var = chunk.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / chunk.len() as f64;
        for (k, x) in chunk.iter().enumerate() {
            let p = b * block + k;
            let ch = (p / spatial.max(1)) % c;
            y[p] = scale[ch] * (x - mean) / (var + eps).sqrt() + bias[ch];
        }
    }
    y
}

// ---------------------------------------------------------------------------------
// LpNormalization, LRN, MeanVarianceNormalization

/// `x / ||x||_p` along the lane; a zero norm gives zeros.
fn lp_lane(p: i64, l: &[f64]) -> Vec<f64> {
    let norm = if p == 1 { l.iter().map(|v| v.abs()).sum() } else { l.iter().map(|v| v * v).sum::<f64>().sqrt() };
    l.iter().map(|v| if norm == 0.0 { 0.0 } else { v / norm }).collect()
}

/// Local response normalisation across channels: each element is divided by
/// `(bias + alpha / size * sum of squares over the channel window) ^ beta`.
fn lrn(v: &[f64], shape: &[usize], alpha: f64, beta: f64, bias: f64, size: usize) -> Vec<f64> {
    let (outer, c, inner) = lanes(shape, 1);
    let (before, after) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let mut y = vec![0.0; v.len()];
    for o in 0..outer {
        for ch in 0..c {
            let (lo, hi) = (ch.saturating_sub(before), (ch + after).min(c.saturating_sub(1)));
            for j in 0..inner {
                let sq: f64 = (lo..=hi).map(|k| v[(o * c + k) * inner + j].powi(2)).sum();
                let p = (o * c + ch) * inner + j;
                y[p] = v[p] / (bias + alpha / size as f64 * sq).powf(beta);
            }
        }
    }
    y
}

/// `(x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9)` over `axes`, as ONNX's function body.
fn mvn(v: &[f64], shape: &[usize], axes: &[usize]) -> Result<Vec<f64>, OpError> {
    let mask: Vec<bool> = (0..shape.len()).map(|d| axes.contains(&d)).collect();
    let mut y = vec![0.0; v.len()];
    for g in groups(shape, &mask)? {
        let n = g.len() as f64;
        let mean = g.iter().map(|&i| v[i]).sum::<f64>() / n;
        let mean_sq = g.iter().map(|&i| v[i] * v[i]).sum::<f64>() / n;
        let std = (mean_sq - mean * mean).sqrt();
        for &i in &g {
            y[i] = (v[i] - mean) / (std + 1e-9);
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardmax_picks_first_max() {
        assert_eq!(softmax_lane(SoftmaxKind::Hardmax, &[1.0, 3.0, 3.0]), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn log_softmax_matches_log_of_softmax() {
        let l = [0.5, -1.0, 2.0];
        let s = softmax_lane(SoftmaxKind::Softmax, &l);
        let ls = softmax_lane(SoftmaxKind::LogSoftmax, &l);
        for (a, b) in s.iter().zip(ls) {
            assert!((a.ln() - b).abs() < 1e-12);
        }
    }
}
