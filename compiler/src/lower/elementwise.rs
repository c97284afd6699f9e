//! Lowering of the elementwise family: every op is one [`map`] kernel — a loop over the
//! output with the (broadcast) input elements loaded into variables — whose stored value
//! is a scalar expression built by the op's module:
//! - `elementwise_unary`: math functions and activations;
//! - `elementwise_binary`: arithmetic, bitwise, logic, comparisons, Pow, the variadic
//!   Sum/Mean/Max/Min and Clip;
//! - `elementwise_cast`: Cast/CastLike and IsNaN/IsInf;
//! - `elementwise_num`: the type-specific arithmetic they share (`u64` order, guarded
//!   integer division, float → integer conversion).
//!
//! Ops that change nothing (Dropout's data, a Cast to the same type) alias their input.
//! See `docs/lowering-elementwise.md`.

#[path = "elementwise_binary.rs"]
mod elementwise_binary;
#[path = "elementwise_cast.rs"]
mod elementwise_cast;
#[path = "elementwise_map.rs"]
mod elementwise_map;
#[path = "elementwise_num.rs"]
mod elementwise_num;
#[path = "elementwise_unary.rs"]
mod elementwise_unary;
#[cfg(test)]
#[path = "elementwise_tests.rs"]
mod elementwise_tests;

use std::cell::Cell;

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, Expr};
use crate::ops::elementwise::{Binary, ClipBounds, Dropout, ElementwiseOp};
use elementwise_map::map;
use elementwise_num::{lit, Num};

pub fn lower(op: &ElementwiseOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let x = input(ins, 0)?;
    let nx = Num::of(x.ty.dtype)?;
    match op {
        ElementwiseOp::Cast { to, mode } => cast(cx, x, output(outs, 0)?, *to, mode.saturate),
        ElementwiseOp::CastLike(mode) => cast(cx, x, output(outs, 0)?, input(ins, 1)?.ty.dtype, mode.saturate),
        ElementwiseOp::Unary(u) => {
            let u = *u;
            map_checked(cx, output(outs, 0)?, &[x], |k, a| elementwise_unary::unary(u, nx, k, a[0].clone()))
        }
        ElementwiseOp::Binary(Binary::Pow) => {
            let y = input(ins, 1)?;
            let ny = Num::of(y.ty.dtype)?;
            map(cx, output(outs, 0)?, &[x, y], |k, a| elementwise_binary::pow(nx, ny, k, a[0].clone(), a[1].clone()))
        }
        ElementwiseOp::Binary(Binary::PRelu) => {
            let slope = prelu_slope(x, input(ins, 1)?)?;
            binary(cx, Binary::PRelu, nx, x, &slope, output(outs, 0)?)
        }
        ElementwiseOp::Binary(b) => binary(cx, *b, nx, x, input(ins, 1)?, output(outs, 0)?),
        ElementwiseOp::Compare(c) => {
            let c = *c;
            map(cx, output(outs, 0)?, &[x, input(ins, 1)?], |_, a| elementwise_binary::compare(c, nx, a[0].clone(), a[1].clone()))
        }
        ElementwiseOp::Variadic(v) => {
            let v = *v;
            let all = (0..ins.len()).map(|i| input(ins, i)).collect::<Result<Vec<_>, _>>()?;
            map_checked(cx, output(outs, 0)?, &all, |k, a| elementwise_binary::variadic(v, nx, k, a))
        }
        ElementwiseOp::Where => {
            let args = [x, input(ins, 1)?, input(ins, 2)?];
            map(cx, output(outs, 0)?, &args, |_, a| e::select(a[0].clone(), a[1].clone(), a[2].clone()))
        }
        ElementwiseOp::Clip(bounds) => clip(cx, *bounds, nx, x, ins, output(outs, 0)?),
        ElementwiseOp::IsNaN => map(cx, output(outs, 0)?, &[x], |_, a| elementwise_cast::is_nan(a[0].clone())),
        ElementwiseOp::IsInf { positive, negative } => {
            let (p, n) = (*positive, *negative);
            map(cx, output(outs, 0)?, &[x], |_, a| elementwise_cast::is_inf(nx, a[0].clone(), p, n))
        }
        ElementwiseOp::Dropout(d) => dropout(cx, *d, ins, outs),
    }
}

fn input(ins: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    ins.get(i).and_then(|o| o.as_ref()).ok_or_else(|| OpError::invalid(format!("input {i} is missing")))
}

fn output(outs: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    outs.get(i).and_then(|o| o.as_ref()).ok_or_else(|| OpError::invalid(format!("output {i} is missing")))
}

/// [`map`] with a scalar builder that may reject the op: the builder runs inside the
/// kernel's loop, so its error is carried out and the half-built kernel dropped.
fn map_checked(
    cx: &mut LowerCx,
    out: &Operand,
    ins: &[&Operand],
    f: impl FnOnce(&mut KernelBuilder, &[Expr]) -> Result<Expr, OpError>,
) -> Result<(), OpError> {
    let err = Cell::new(None);
    let kernels = cx.prog.kernels.len();
    map(cx, out, ins, |k, a| {
        f(k, a).unwrap_or_else(|e| {
            err.set(Some(e));
            e::bool(false)
        })
    })?;
    match err.into_inner() {
        Some(e) => {
            cx.prog.kernels.truncate(kernels);
            Err(e)
        }
        None => Ok(()),
    }
}

fn binary(cx: &mut LowerCx, b: Binary, n: Num, x: &Operand, y: &Operand, out: &Operand) -> Result<(), OpError> {
    map_checked(cx, out, &[x, y], |k, a| elementwise_binary::binary(b, n, k, a[0].clone(), a[1].clone()))
}

fn cast(cx: &mut LowerCx, x: &Operand, out: &Operand, to: DType, saturate: bool) -> Result<(), OpError> {
    let (from, to) = (Num::of(x.ty.dtype)?, Num::of(to)?);
    if from.dtype == to.dtype {
        cx.alias(0, 0);
        return Ok(());
    }
    map(cx, out, &[x], |k, a| elementwise_cast::cast(k, from, to, saturate, a[0].clone()))
}

/// PRelu's slope reshaped (same elements, same order) to the shape that broadcasts to
/// `x`: numpy's rules, or a 1-D slope matching exactly one axis of `x` (the reference's
/// `prelu_slope_shape`).
fn prelu_slope(x: &Operand, slope: &Operand) -> Result<Operand, OpError> {
    let (xs, ss) = (x.shape(), slope.shape());
    let numpy = ss.len() <= xs.len() && ss.iter().rev().zip(xs.iter().rev()).all(|(&s, &d)| s == d || s == 1);
    let shape = if numpy {
        ss.to_vec()
    } else {
        let hits: Vec<usize> = match *ss {
            [d] => (0..xs.len()).filter(|&i| xs[i] == d).collect(),
            _ => Vec::new(),
        };
        let [axis] = hits[..] else {
            return Err(OpError::invalid(format!("PRelu slope of shape {ss:?} does not broadcast to {xs:?}")));
        };
        (0..xs.len()).map(|i| if i == axis { xs[i] } else { 1 }).collect()
    };
    let mut s = slope.clone();
    s.ty.shape = shape;
    Ok(s)
}

fn clip(cx: &mut LowerCx, bounds: ClipBounds, n: Num, x: &Operand, ins: &[Option<Operand>], out: &Operand) -> Result<(), OpError> {
    match bounds {
        ClipBounds::Attrs { min, max } => {
            if !n.is_float() {
                return Err(OpError::unsupported("Clip of integers with attribute bounds (opset < 11)"));
            }
            let lo = (min != f32::NEG_INFINITY).then(|| lit(n.ty, min as f64));
            let hi = (max != f32::INFINITY).then(|| lit(n.ty, max as f64));
            map(cx, out, &[x], |_, a| elementwise_binary::clip(n, a[0].clone(), lo, hi))
        }
        ClipBounds::Inputs => {
            let lo = ins.get(1).and_then(|o| o.as_ref());
            let hi = ins.get(2).and_then(|o| o.as_ref());
            let args: Vec<&Operand> = [Some(x), lo, hi].into_iter().flatten().collect();
            let (has_lo, has_hi) = (lo.is_some(), hi.is_some());
            map(cx, out, &args, |_, a| {
                let mut rest = a[1..].iter().cloned();
                let lo = if has_lo { rest.next() } else { None };
                let hi = if has_hi { rest.next() } else { None };
                elementwise_binary::clip(n, a[0].clone(), lo, hi)
            })
        }
    }
}

/// Inference-mode Dropout: the data unchanged (aliased) and an all-true mask. A
/// `training_mode` that is only known at run time could ask for random output, which
/// edgec does not generate: unsupported.
fn dropout(cx: &mut LowerCx, d: Dropout, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    if d.from_inputs {
        if let Some(training) = ins.get(2).and_then(|o| o.as_ref()) {
            let ratio = ins.get(1).and_then(|o| o.as_ref());
            let identity = match (&training.konst, ratio.map(|r| &r.konst)) {
                (Some(t), _) if !any_nonzero(t) => true,
                (Some(_), Some(Some(r))) => r.to_f64_vec().first() == Some(&0.0),
                _ => false,
            };
            if !identity {
                return Err(OpError::unsupported(
                    "Dropout whose training_mode is not a constant false (and ratio not a constant 0): the output may be random",
                ));
            }
        }
    }
    cx.alias(0, 0);
    if let Some(mask) = outs.get(1).and_then(|o| o.as_ref()) {
        let n = Num::of(mask.ty.dtype)?;
        map(cx, mask, &[], |_, _| n.lit(1.0))?;
    }
    Ok(())
}

fn any_nonzero(t: &Tensor) -> bool {
    t.to_f64_vec().iter().any(|&v| v != 0.0)
}
