//! Lowering of the normalize family: softmax-like ops, the two losses and the
//! normalisations.
//!
//! Each op is a loop over groups (`reduce::Groups`: the lanes of a softmax, the rows of
//! a layer norm, the (instance, group) blocks of a group norm ...) with a few passes over
//! the group's elements: statistics accumulate in kernel variables, then a last pass
//! writes the outputs. Values are recomputed rather than staged in scratch memory, which
//! keeps every kernel a single loop nest; the exception is Softmax with an output that
//! holds the compute type exactly, which keeps its exponentials there between passes.
//! Float math runs in F32 for f32/f16/bf16 and in F64 for f64; the formulas, and where
//! epsilon goes, are the evaluator's (`ops/normalize.rs`).

use super::reduce::{accumulate, and, better, flit, loader, opt_operand, operand, or, Group, Groups};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{broadcast, iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp, Var};
use crate::ops::normalize::{Loss, NormalizeOp, Reduction, SoftmaxKind};
use crate::ops::util::{norm_axes, norm_axis};

pub fn lower(op: &NormalizeOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let x = operand(ins, 0)?;
    let ft = match x.kty()? {
        t if t.is_float() => t,
        _ => return Err(OpError::unsupported(format!("{} input to a normalization", x.ty.dtype))),
    };
    let y = operand(outs, 0)?;
    let shape = x.shape();
    let rank = shape.len();
    let mut k = cx.kernel("");
    match op {
        NormalizeOp::Softmax { kind, axis, legacy_2d } => {
            let a = norm_axis(*axis, rank)?;
            // Before opset 13 the op runs over everything from `axis` on.
            let g = if *legacy_2d { Groups::new(shape, (0..rank).map(|d| d >= a).collect()) } else { Groups::along(shape, a) };
            // `y` can hold the exponentials between the passes when it stores them
            // exactly (an f16 output would round them).
            let exact = matches!((y.ty.dtype, ft), (DType::F32, Ty::F32) | (DType::F64, Ty::F64));
            softmax(&mut k, &g, *kind, x.buf, (y.buf, exact), ft);
        }
        NormalizeOp::Loss(l) => {
            drop(k);
            return lower_loss(l, cx, ins, outs, ft);
        }
        NormalizeOp::LayerNorm { axis, epsilon, .. } => {
            let a = norm_axis(*axis, rank)?;
            let stats = [opt_operand(outs, 1), opt_operand(outs, 2)];
            layer_norm(&mut k, x, y.buf, (operand(ins, 1)?, opt_operand(ins, 2)), stats, a, *epsilon, false, ft)?;
        }
        NormalizeOp::RmsNorm { axis, epsilon } => {
            let a = norm_axis(*axis, rank)?;
            layer_norm(&mut k, x, y.buf, (operand(ins, 1)?, None), [None, None], a, *epsilon, true, ft)?;
        }
        NormalizeOp::BatchNorm { epsilon, momentum, training } => {
            batch_norm(&mut k, x, ins, outs, *epsilon, *momentum, *training, ft)?;
        }
        NormalizeOp::InstanceNorm { epsilon } => {
            channels(shape)?;
            let g = Groups::new(shape, (0..rank).map(|d| d >= 2).collect());
            let params = Params::new(ins, ft)?;
            g.for_groups(&mut k, |k, grp| {
                let (mean, inv_std) = moments(k, &g, grp, x.buf, *epsilon, ft);
                g.for_elems(k, grp, |k, ix, i| params.apply(k, y.buf, i, x.buf, ix[1].clone(), mean, inv_std));
            });
        }
        NormalizeOp::GroupNorm { num_groups, epsilon, per_channel } => {
            let c = channels(shape)?;
            let groups = usize::try_from(*num_groups).ok().filter(|&g| g > 0 && c % g == 0);
            let groups = groups.ok_or_else(|| OpError::invalid(format!("num_groups {num_groups} does not divide the {c} channels")))?;
            // The input seen as [N, groups, channels per group, spatial].
            let per = c / groups;
            let view = [shape[0], groups, per, shape[2..].iter().product()];
            let g = Groups::new(&view, vec![false, false, true, true]);
            let params = Params::new(ins, ft)?;
            g.for_groups(&mut k, |k, grp| {
                let (mean, inv_std) = moments(k, &g, grp, x.buf, *epsilon, ft);
                g.for_elems(k, grp, |k, ix, i| {
                    let p = if *per_channel { iadd(imul(ix[1].clone(), per as i64), ix[2].clone()) } else { ix[1].clone() };
                    params.apply(k, y.buf, i, x.buf, p, mean, inv_std);
                });
            });
        }
        NormalizeOp::LpNorm { axis, p } => {
            let g = Groups::along(shape, norm_axis(*axis, rank)?);
            let l1 = *p == 1;
            g.for_groups(&mut k, |k, grp| {
                let s = g.sum(k, grp, ft, flit(ft, 0.0), |i| {
                    let v = e::load(x.buf, i);
                    if l1 { e::un(UnOp::Abs, v) } else { e::mul(v.clone(), v) }
                });
                let norm = k.let_(ft, if l1 { e::var(s) } else { e::un(UnOp::Sqrt, e::var(s)) });
                g.for_elems(k, grp, |k, _, i| {
                    let zero = e::bin(BinOp::Eq, e::var(norm), flit(ft, 0.0));
                    k.store(y.buf, i.clone(), e::select(zero, flit(ft, 0.0), e::div(e::load(x.buf, i), e::var(norm))));
                });
            });
        }
        NormalizeOp::Lrn { alpha, beta, bias, size } => {
            channels(shape)?;
            lrn(&mut k, shape, x.buf, y.buf, (*alpha, *beta, *bias), *size, ft);
        }
        NormalizeOp::Mvn { axes } => {
            let axes = norm_axes(axes, rank)?;
            let g = Groups::new(shape, (0..rank).map(|d| axes.contains(&d)).collect());
            g.for_groups(&mut k, |k, grp| {
                // E[x²] - E[x]² in the evaluator, computed here as the (equal, but
                // cancellation-free) mean squared deviation.
                let (mean, var) = mean_var(k, &g, grp, x.buf, ft);
                let denom = k.let_(ft, e::add(e::un(UnOp::Sqrt, e::var(var)), flit(ft, 1e-9)));
                g.for_elems(k, grp, |k, _, i| {
                    k.store(y.buf, i.clone(), e::div(e::sub(e::load(x.buf, i), e::var(mean)), e::var(denom)));
                });
            });
        }
    }
    cx.emit(k.finish());
    Ok(())
}

/// The channel count of an `N x C x ...` input.
fn channels(shape: &[usize]) -> Result<usize, OpError> {
    match shape {
        [_, c, ..] => Ok(*c),
        _ => Err(OpError::invalid(format!("input of shape {shape:?} needs a batch and a channel axis"))),
    }
}

/// The group's mean and population variance (two passes).
fn mean_var(k: &mut KernelBuilder, g: &Groups, grp: &Group, x: BufId, ft: Ty) -> (Var, Var) {
    let n = flit(ft, g.size() as f64);
    let s = g.sum(k, grp, ft, flit(ft, 0.0), |i| e::load(x, i));
    let mean = k.let_(ft, e::div(e::var(s), n.clone()));
    let ss = g.sum(k, grp, ft, flit(ft, 0.0), |i| {
        let d = e::sub(e::load(x, i), e::var(mean));
        e::mul(d.clone(), d)
    });
    let var = k.let_(ft, e::div(e::var(ss), n));
    (mean, var)
}

/// The group's mean and `1 / sqrt(var + eps)`.
fn moments(k: &mut KernelBuilder, g: &Groups, grp: &Group, x: BufId, eps: f64, ft: Ty) -> (Var, Var) {
    let (mean, var) = mean_var(k, g, grp, x, ft);
    let inv_std = k.let_(ft, e::div(flit(ft, 1.0), e::un(UnOp::Sqrt, e::add(e::var(var), flit(ft, eps)))));
    (mean, inv_std)
}

/// Per-channel scale and bias (inputs 1 and 2) of the instance and group norms.
struct Params {
    scale: Box<dyn Fn(Expr) -> Expr>,
    bias: Box<dyn Fn(Expr) -> Expr>,
}

impl Params {
    fn new(ins: &[Option<Operand>], ft: Ty) -> Result<Self, OpError> {
        Ok(Params { scale: Box::new(loader(operand(ins, 1)?, ft)?), bias: Box::new(loader(operand(ins, 2)?, ft)?) })
    }

    /// `y[i] = scale[p] * (x[i] - mean) * inv_std + bias[p]`.
    #[allow(clippy::too_many_arguments)]
    fn apply(&self, k: &mut KernelBuilder, y: BufId, i: Expr, x: BufId, p: Expr, mean: Var, inv_std: Var) {
        let norm = e::mul(e::sub(e::load(x, i.clone()), e::var(mean)), e::var(inv_std));
        k.store(y, i, e::add(e::mul((self.scale)(p.clone()), norm), (self.bias)(p)));
    }
}

// ---------------------------------------------------------------------------------
// Softmax, LogSoftmax, Hardmax

/// One softmax-like op over each group of `x` into `y` (both of float type `ft`).
/// `y_exact`: `y` stores values of type `ft` without rounding, so Softmax writes each
/// exponential there in the summing pass and the last pass only scales it (one `exp` per
/// element instead of two, with the same results: the stored value is the one summed).
fn softmax(k: &mut KernelBuilder, g: &Groups, kind: SoftmaxKind, x: BufId, (y, y_exact): (BufId, bool), ft: Ty) {
    if g.size() == 0 {
        // Empty groups: nothing to write (and no first element to start a search at).
        return;
    }
    g.for_groups(k, |k, grp| {
        if kind == SoftmaxKind::Hardmax {
            // One-hot at the first maximum (the first NaN if any), counted in the
            // group's row-major order.
            let pos = k.let_(Ty::Index, e::idx(0));
            let best = arg_position(k, g, grp, x, ft, pos);
            let at = k.let_(Ty::Index, e::idx(0));
            g.for_elems(k, grp, |k, _, i| {
                let hit = e::bin(BinOp::Eq, e::var(at), e::var(best));
                k.store(y, i, e::select(hit, flit(ft, 1.0), flit(ft, 0.0)));
                k.set(at, e::add(e::var(at), e::idx(1)));
            });
            return;
        }
        // The maximum ignores NaN (as the evaluator's `f64::max`): a NaN then poisons
        // only its own lane's sum, as in the evaluator.
        let m = k.let_(ft, flit(ft, f64::NEG_INFINITY));
        g.for_elems(k, grp, |k, _, i| {
            let v = e::load(x, i);
            k.set(m, e::select(e::bin(BinOp::Gt, v.clone(), e::var(m)), v, e::var(m)));
        });
        let shifted = |i: Expr| e::sub(e::load(x, i), e::var(m));
        if kind == SoftmaxKind::Softmax && y_exact {
            let s = k.let_(ft, flit(ft, 0.0));
            g.for_elems(k, grp, |k, _, i| {
                let ex = k.let_(ft, e::un(UnOp::Exp, shifted(i.clone())));
                k.store(y, i, e::var(ex));
                accumulate(k, s, e::var(ex));
            });
            let inv = k.let_(ft, e::div(flit(ft, 1.0), e::var(s)));
            g.for_elems(k, grp, |k, _, i| k.store(y, i.clone(), e::mul(e::load(y, i), e::var(inv))));
            return;
        }
        let s = g.sum(k, grp, ft, flit(ft, 0.0), |i| e::un(UnOp::Exp, shifted(i)));
        match kind {
            SoftmaxKind::Softmax => {
                let inv = k.let_(ft, e::div(flit(ft, 1.0), e::var(s)));
                g.for_elems(k, grp, |k, _, i| k.store(y, i.clone(), e::mul(e::un(UnOp::Exp, shifted(i)), e::var(inv))));
            }
            _ => {
                let ls = k.let_(ft, e::un(UnOp::Log, e::var(s)));
                g.for_elems(k, grp, |k, _, i| k.store(y, i.clone(), e::sub(shifted(i), e::var(ls))));
            }
        }
    });
}

/// The row-major position within the group of its first maximum (first NaN if any),
/// counted in `pos`.
fn arg_position(k: &mut KernelBuilder, g: &Groups, grp: &Group, x: BufId, ft: Ty, pos: Var) -> Var {
    let best = k.let_(Ty::Index, e::idx(0));
    let bv = k.let_(ft, e::load(x, grp.base.clone()));
    g.for_elems(k, grp, |k, _, i| {
        let c = k.let_(ft, e::load(x, i));
        k.if_(
            better(ft, true, false, e::var(c), e::var(bv)),
            |k| {
                k.set(best, e::var(pos));
                k.set(bv, e::var(c));
            },
            |_| {},
        );
        k.set(pos, e::add(e::var(pos), e::idx(1)));
    });
    best
}

// ---------------------------------------------------------------------------------
// LayerNormalization, RMSNormalization, BatchNormalization, LRN

/// Normalises over the dims from `axis` on; `rms` skips the mean subtraction. Scale
/// and bias broadcast to the input; Mean and InvStdDev (`stats`) are optional.
#[allow(clippy::too_many_arguments)]
fn layer_norm(
    k: &mut KernelBuilder,
    x: &Operand,
    y: BufId,
    (scale, bias): (&Operand, Option<&Operand>),
    stats: [Option<&Operand>; 2],
    axis: usize,
    eps: f64,
    rms: bool,
    ft: Ty,
) -> Result<(), OpError> {
    let shape = x.shape();
    let g = Groups::new(shape, (0..shape.len()).map(|d| d >= axis).collect());
    let n = flit(ft, g.size() as f64);
    let load_scale = loader(scale, ft)?;
    let load_bias = bias.map(|b| loader(b, ft)).transpose()?;
    let mut stash = Vec::new();
    for s in stats {
        stash.push(s.map(|o| o.kty().map(|t| (o.buf, t))).transpose()?);
    }
    g.for_groups(k, |k, grp| {
        let mean = if rms {
            k.let_(ft, flit(ft, 0.0))
        } else {
            let s = g.sum(k, grp, ft, flit(ft, 0.0), |i| e::load(x.buf, i));
            k.let_(ft, e::div(e::var(s), n.clone()))
        };
        let ss = g.sum(k, grp, ft, flit(ft, 0.0), |i| {
            let d = e::sub(e::load(x.buf, i), e::var(mean));
            e::mul(d.clone(), d)
        });
        let var = e::div(e::var(ss), n.clone());
        let inv_std = k.let_(ft, e::div(flit(ft, 1.0), e::un(UnOp::Sqrt, e::add(var, flit(ft, eps)))));
        g.for_elems(k, grp, |k, ix, i| {
            let norm = e::mul(e::sub(e::load(x.buf, i.clone()), e::var(mean)), e::var(inv_std));
            let mut v = e::mul(norm, load_scale(broadcast(scale.shape(), ix)));
            if let (Some(b), Some(lb)) = (bias, &load_bias) {
                v = e::add(v, lb(broadcast(b.shape(), ix)));
            }
            k.store(y, i, v);
        });
        for (s, v) in stash.iter().zip([mean, inv_std]) {
            if let Some((buf, t)) = s {
                k.store(*buf, grp.out.clone(), if *t == ft { e::var(v) } else { e::cast(*t, e::var(v)) });
            }
        }
    });
    Ok(())
}

/// Inference uses the running statistics (inputs 3, 4); training mode the batch's,
/// per channel, and also outputs the updated running statistics.
#[allow(clippy::too_many_arguments)]
fn batch_norm(
    k: &mut KernelBuilder,
    x: &Operand,
    ins: &[Option<Operand>],
    outs: &[Option<Operand>],
    eps: f64,
    momentum: f64,
    training: bool,
    ft: Ty,
) -> Result<(), OpError> {
    let shape = x.shape();
    channels(shape)?;
    let y = operand(outs, 0)?.buf;
    let scale = loader(operand(ins, 1)?, ft)?;
    let bias = loader(operand(ins, 2)?, ft)?;
    let running = [loader(operand(ins, 3)?, ft)?, loader(operand(ins, 4)?, ft)?];
    let mut updated = Vec::new();
    for i in [1, 2] {
        updated.push(if training { opt_operand(outs, i).map(|o| o.kty().map(|t| (o.buf, t))).transpose()? } else { None });
    }
    let g = Groups::new(shape, (0..shape.len()).map(|d| d != 1).collect());
    g.for_groups(k, |k, grp| {
        let ch = grp.ix[1].clone();
        let (mean, var) = if training {
            mean_var(k, &g, grp, x.buf, ft)
        } else {
            (k.let_(ft, running[0](ch.clone())), k.let_(ft, running[1](ch.clone())))
        };
        let denom = k.let_(ft, e::un(UnOp::Sqrt, e::add(e::var(var), flit(ft, eps))));
        let (sc, bi) = (k.let_(ft, scale(ch.clone())), k.let_(ft, bias(ch.clone())));
        g.for_elems(k, grp, |k, _, i| {
            let v = e::div(e::mul(e::var(sc), e::sub(e::load(x.buf, i.clone()), e::var(mean))), e::var(denom));
            k.store(y, i, e::add(v, e::var(bi)));
        });
        for ((out, old), new) in updated.iter().zip(&running).zip([mean, var]) {
            if let Some((buf, t)) = out {
                let v = e::add(e::mul(old(ch.clone()), flit(ft, momentum)), e::mul(e::var(new), flit(ft, 1.0 - momentum)));
                k.store(*buf, ch.clone(), if *t == ft { v } else { e::cast(*t, v) });
            }
        }
    });
    Ok(())
}

/// Local response normalisation across channels: a window of `size` channels around
/// each one (clipped at the edges) gives the sum of squares.
fn lrn(k: &mut KernelBuilder, shape: &[usize], x: BufId, y: BufId, (alpha, beta, bias): (f64, f64, f64), size: usize, ft: Ty) {
    let (outer, c, inner) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    let before = ((size - 1) / 2) as i64;
    let at = |o: &Expr, ch: Expr, j: &Expr| iadd(iadd(imul(o.clone(), (c * inner) as i64), imul(ch, inner as i64)), j.clone());
    k.for_shape(&[outer, c, inner], |k, ix| {
        let sq = k.let_(ft, flit(ft, 0.0));
        k.for_(size, |k, w| {
            let ch = k.let_(Ty::Index, e::add(e::sub(ix[1].clone(), e::idx(before)), w));
            let inside = and(e::bin(BinOp::Ge, e::var(ch), e::idx(0)), e::bin(BinOp::Lt, e::var(ch), e::idx(c as i64)));
            k.if_(
                inside,
                |k| {
                    let v = e::load(x, at(&ix[0], e::var(ch), &ix[2]));
                    accumulate(k, sq, e::mul(v.clone(), v));
                },
                |_| {},
            );
        });
        let p = at(&ix[0], ix[1].clone(), &ix[2]);
        let base = e::add(flit(ft, bias), e::mul(flit(ft, alpha / size as f64), e::var(sq)));
        k.store(y, p.clone(), e::div(e::load(x, p), e::bin(BinOp::Pow, base, flit(ft, beta))));
    });
}

// ---------------------------------------------------------------------------------
// NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss

/// The loss over log-probabilities `N x C x d...`: the input itself, or for
/// `SoftmaxCrossEntropyLoss` its log-softmax over the classes (written to the optional
/// log_prob output, or to scratch). Targets are runtime indices: an ignored target
/// counts with weight 0, any other must lie in `0..C` (else the run fails with 6).
fn lower_loss(l: &Loss, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>], ft: Ty) -> Result<(), OpError> {
    let x = operand(ins, 0)?;
    let target = operand(ins, 1)?;
    let shape = x.shape();
    if shape.len() < 2 || !target.kty()?.is_int() {
        return Err(OpError::invalid("loss needs an N x C x ... input and integer targets"));
    }
    let (n, c, d) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    let logp = if l.softmax {
        let out = opt_operand(outs, 1);
        // Staged at full precision: an f16 log_prob output is filled by a copy.
        let direct = out.filter(|o| matches!(o.ty.dtype, DType::F32 | DType::F64));
        let buf = match direct {
            Some(o) => o.buf,
            None => cx.scratch("log_prob", if ft == Ty::F64 { DType::F64 } else { DType::F32 }, shape.to_vec()),
        };
        let mut k = cx.kernel("log_softmax");
        softmax(&mut k, &Groups::along(shape, 1), SoftmaxKind::LogSoftmax, x.buf, (buf, false), ft);
        if let (Some(o), None) = (out, direct) {
            k.for_(o.len(), |k, i| k.store(o.buf, i.clone(), e::load(buf, i)));
        }
        cx.emit(k.finish());
        buf
    } else {
        x.buf
    };
    let loss = operand(outs, 0)?;
    let weight = opt_operand(ins, 2).map(|w| loader(w, ft)).transpose()?;
    let mut k = cx.kernel("loss");
    let total = k.let_(ft, flit(ft, 0.0));
    let weights = k.let_(ft, flit(ft, 0.0));
    k.for_shape(&[n, d], |k, ix| {
        let ti = iadd(imul(ix[0].clone(), d as i64), ix[1].clone());
        let t = k.let_(Ty::I64, e::cast(Ty::I64, e::load(target.buf, ti.clone())));
        let (lv, wv) = (k.var(ft), k.var(ft));
        let pick = |k: &mut KernelBuilder| {
            let bad = or(e::bin(BinOp::Lt, e::var(t), e::i64(0)), e::bin(BinOp::Ge, e::var(t), e::i64(c as i64)));
            k.if_(bad, |k| k.fail(6), |_| {});
            let cls = e::cast(Ty::Index, e::var(t));
            k.set(wv, weight.as_ref().map_or(flit(ft, 1.0), |w| w(cls.clone())));
            let at = iadd(imul(ix[0].clone(), (c * d) as i64), iadd(imul(cls, d as i64), ix[1].clone()));
            k.set(lv, e::mul(e::un(UnOp::Neg, e::load(logp, at)), e::var(wv)));
        };
        match l.ignore_index {
            Some(ii) => k.if_(
                e::bin(BinOp::Eq, e::var(t), e::i64(ii)),
                |k| {
                    k.set(lv, flit(ft, 0.0));
                    k.set(wv, flit(ft, 0.0));
                },
                pick,
            ),
            None => pick(k),
        }
        if l.reduction == Reduction::None {
            k.store(loss.buf, ti, e::var(lv));
        } else {
            accumulate(k, total, e::var(lv));
            accumulate(k, weights, e::var(wv));
        }
    });
    match l.reduction {
        Reduction::None => {}
        Reduction::Sum => k.store(loss.buf, e::idx(0), e::var(total)),
        // The weighted mean: ignored targets count neither in the sum nor the divisor.
        Reduction::Mean => k.store(loss.buf, e::idx(0), e::div(e::var(total), e::var(weights))),
    }
    cx.emit(k.finish());
    Ok(())
}
