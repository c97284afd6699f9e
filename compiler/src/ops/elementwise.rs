//! The elementwise family: casts, arithmetic, comparisons, logic, math functions and
//! activations — every op whose output element depends only on the input elements at
//! the same (broadcast) position.
//!
//! Evaluation computes in `f64` for float types and in `i128` for integer types (see
//! [`elementwise_num`]), then converts back to the output type; semantics follow ONNX's
//! numpy reference (`onnx/reference/ops/op_*.py`), including its integer quirks
//! (truncating `Div`, Python-style `Mod`, division by zero giving 0).

#[path = "elementwise_cast.rs"]
mod elementwise_cast;
#[path = "elementwise_math.rs"]
mod elementwise_math;
#[path = "elementwise_num.rs"]
mod elementwise_num;

use super::util::{broadcast_all, broadcast_shapes, expect_dtype, input, opt_input, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::packed::E8M0Round;
use crate::ir::{DType, Tensor, TypeInfo};

pub use elementwise_cast::CastMode;
pub use elementwise_math::{Binary, Compare, Unary, Variadic};

#[derive(Clone, Debug)]
pub enum ElementwiseOp {
    Cast { to: DType, mode: CastMode },
    /// Cast to the element type of input 1.
    CastLike(CastMode),
    Unary(Unary),
    /// Two broadcast inputs; the output has the type of the first (`Pow`: of the base).
    Binary(Binary),
    /// Two broadcast inputs of one type; a bool output.
    Compare(Compare),
    /// Any number of broadcast inputs of one type.
    Variadic(Variadic),
    Where,
    Clip(ClipBounds),
    IsNaN,
    IsInf { positive: bool, negative: bool },
    /// Inference-mode dropout: the identity, plus an all-true mask when declared.
    Dropout(Dropout),
}

/// Where `Clip` finds its bounds: attributes before opset 11, optional inputs 1 and 2 after.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClipBounds {
    Attrs { min: f32, max: f32 },
    Inputs,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Opset 12+: `ratio` and `training_mode` are inputs 1 and 2.
    pub from_inputs: bool,
    /// Opset 10+: the mask is bool; before, it has the data's type.
    pub bool_mask: bool,
    pub n_outputs: usize,
}

/// Every integer type with a Rust element type.
const INTS: &[DType] = &[DType::I8, DType::U8, DType::I16, DType::U16, DType::I32, DType::U32, DType::I64, DType::U64];
const UNSIGNED: &[DType] = &[DType::U8, DType::U16, DType::U32, DType::U64];
/// Floats and integers with a Rust element type.
const NUMERIC: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I32,
    DType::U32,
    DType::I64,
    DType::U64,
];

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let op = match ctx.op_type {
        "Cast" => parse_cast(ctx),
        "CastLike" => cast_mode(ctx).map(ElementwiseOp::CastLike),
        "Where" => Ok(ElementwiseOp::Where),
        "Clip" => parse_clip(ctx),
        "IsNaN" => Ok(ElementwiseOp::IsNaN),
        "IsInf" => parse_isinf(ctx),
        "Dropout" => Ok(ElementwiseOp::Dropout(Dropout {
            from_inputs: ctx.opset >= 12,
            bool_mask: ctx.opset >= 10,
            n_outputs: ctx.n_outputs(),
        })),
        name => {
            if let Some(u) = Unary::parse(ctx, name) {
                u.map(ElementwiseOp::Unary)
            } else if let Some(b) = Binary::parse(ctx, name) {
                b.map(ElementwiseOp::Binary)
            } else if let Some(c) = Compare::parse(name) {
                legacy_broadcast(ctx).map(|()| ElementwiseOp::Compare(c))
            } else if let Some(v) = Variadic::parse(name) {
                Ok(ElementwiseOp::Variadic(v))
            } else {
                return None;
            }
        }
    };
    Some(op.map(Op::Elementwise))
}

/// Before opset 7, binary ops broadcast only with `broadcast=1`, aligning B to `axis`
/// of A; without `axis` that is numpy's suffix alignment, which edgec applies.
fn legacy_broadcast(ctx: &NodeCtx) -> Result<(), OpError> {
    if ctx.opset < 7 && ctx.has_attr("axis") {
        return Err(OpError::unsupported("legacy broadcasting with an 'axis' attribute (opset < 7)"));
    }
    Ok(())
}

fn cast_mode(ctx: &NodeCtx) -> Result<CastMode, OpError> {
    // Before opset 19 every cast saturated; `saturate` defaults to 1.
    let saturate = ctx.int_or("saturate", 1)? != 0;
    let round = elementwise_cast::parse_round(&ctx.string_or("round_mode", "up")?)?;
    Ok(CastMode { saturate, round })
}

fn parse_cast(ctx: &NodeCtx) -> Result<ElementwiseOp, OpError> {
    // Before opset 6, `to` was the type's name.
    if ctx.opset < 6 {
        let name = ctx.required("to", ctx.string("to"))?;
        let to = (1..=26)
            .filter_map(DType::from_onnx)
            .find(|d| onnx_type_name(*d) == name)
            .ok_or_else(|| OpError::unsupported(format!("Cast to '{name}'")))?;
        return Ok(ElementwiseOp::Cast { to, mode: cast_mode(ctx)? });
    }
    let code = ctx.required("to", ctx.int("to"))?;
    let code = i32::try_from(code).map_err(|_| OpError::invalid(format!("Cast 'to' = {code} is not a data type")))?;
    let to = DType::from_onnx(code).ok_or_else(|| {
        OpError::unsupported(format!("Cast to {} (edgec has no tensors of that type)", DType::onnx_code_name(code)))
    })?;
    Ok(ElementwiseOp::Cast { to, mode: cast_mode(ctx)? })
}

/// `TensorProto.DataType`'s name of a type (`FLOAT`, `INT64`, ...).
fn onnx_type_name(d: DType) -> String {
    match d {
        DType::F32 => "FLOAT".into(),
        DType::F64 => "DOUBLE".into(),
        d => d.name().to_uppercase(),
    }
}

fn parse_clip(ctx: &NodeCtx) -> Result<ElementwiseOp, OpError> {
    if ctx.opset >= 11 {
        return Ok(ElementwiseOp::Clip(ClipBounds::Inputs));
    }
    let min = ctx.float_or("min", f32::NEG_INFINITY)?;
    let max = ctx.float_or("max", f32::INFINITY)?;
    Ok(ElementwiseOp::Clip(ClipBounds::Attrs { min, max }))
}

fn parse_isinf(ctx: &NodeCtx) -> Result<ElementwiseOp, OpError> {
    Ok(ElementwiseOp::IsInf {
        positive: ctx.int_or("detect_positive", 1)? != 0,
        negative: ctx.int_or("detect_negative", 1)? != 0,
    })
}

impl Semantics for ElementwiseOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        let same = |t: &TypeInfo| vec![t.clone()];
        match self {
            ElementwiseOp::Cast { to, .. } => Ok(vec![TypeInfo::new(*to, x.shape.clone())]),
            ElementwiseOp::CastLike(_) => Ok(vec![TypeInfo::new(ctx.input(1)?.dtype, x.shape.clone())]),
            ElementwiseOp::Unary(u) => {
                u.check(x)?;
                Ok(same(x))
            }
            ElementwiseOp::Binary(b) => {
                let y = ctx.input(1)?;
                b.check(x, y)?;
                Ok(vec![TypeInfo::new(x.dtype, b.shape(&x.shape, &y.shape)?)])
            }
            ElementwiseOp::Compare(c) => {
                let y = ctx.input(1)?;
                c.check(x, y)?;
                Ok(vec![TypeInfo::new(DType::Bool, broadcast_shapes(&x.shape, &y.shape)?)])
            }
            ElementwiseOp::Variadic(v) => {
                let all = (0..ctx.inputs.len()).map(|i| ctx.input(i)).collect::<Result<Vec<_>, _>>()?;
                for t in &all {
                    v.check(x, t)?;
                }
                Ok(vec![TypeInfo::new(x.dtype, broadcast_all(all.iter().map(|t| t.shape.as_slice()))?)])
            }
            ElementwiseOp::Where => {
                let (a, b) = (ctx.input(1)?, ctx.input(2)?);
                expect_dtype("Where condition", x, &[DType::Bool])?;
                same_type("Where", a, b)?;
                Ok(vec![TypeInfo::new(a.dtype, broadcast_all([&x.shape[..], &a.shape, &b.shape])?)])
            }
            ElementwiseOp::Clip(bounds) => {
                expect_dtype("Clip input", x, NUMERIC)?;
                if *bounds == ClipBounds::Inputs {
                    for i in [1, 2] {
                        if let Some(t) = ctx.opt_input(i) {
                            same_type("Clip", x, t)?;
                        }
                    }
                }
                Ok(same(x))
            }
            ElementwiseOp::IsNaN | ElementwiseOp::IsInf { .. } => {
                // Every float type, the 8-bit ones included (opset 20).
                if !x.dtype.is_float() {
                    expect_dtype("IsNaN/IsInf input", x, FLOATS)?;
                }
                Ok(vec![TypeInfo::new(DType::Bool, x.shape.clone())])
            }
            ElementwiseOp::Dropout(d) => {
                // A ratio that is only known at run time is checked at evaluation.
                if d.from_inputs && (ctx.opt_input(1).is_none() || ctx.konst(1).is_some()) {
                    dropout_check(ctx.konst(1), ctx.konst(2))?;
                }
                let mask = TypeInfo::new(if d.bool_mask { DType::Bool } else { x.dtype }, x.shape.clone());
                Ok([x.clone(), mask].into_iter().take(ctx.n_outputs.clamp(1, 2)).collect())
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        let out = match self {
            ElementwiseOp::Cast { to, mode } => elementwise_cast::cast(x, *to, *mode)?,
            ElementwiseOp::CastLike(mode) => elementwise_cast::cast(x, input(inputs, 1)?.dtype(), *mode)?,
            ElementwiseOp::Unary(u) => u.eval(x)?,
            ElementwiseOp::Binary(b) => b.eval(x, input(inputs, 1)?)?,
            ElementwiseOp::Compare(c) => c.eval(x, input(inputs, 1)?)?,
            ElementwiseOp::Variadic(v) => {
                let all = (0..inputs.len()).map(|i| input(inputs, i)).collect::<Result<Vec<_>, _>>()?;
                v.eval(&all)?
            }
            ElementwiseOp::Where => elementwise_math::select(x, input(inputs, 1)?, input(inputs, 2)?)?,
            ElementwiseOp::Clip(bounds) => {
                let (lo, hi) = match *bounds {
                    ClipBounds::Attrs { min, max } => {
                        (Some(Tensor::scalar(min as f64)), Some(Tensor::scalar(max as f64)))
                    }
                    ClipBounds::Inputs => (opt_input(inputs, 1).cloned(), opt_input(inputs, 2).cloned()),
                };
                elementwise_math::clip(x, lo.as_ref(), hi.as_ref())?
            }
            ElementwiseOp::IsNaN => Tensor::Bool(x.to_f64_array().mapv(f64::is_nan)),
            ElementwiseOp::IsInf { positive, negative } => {
                let (p, n) = (*positive, *negative);
                Tensor::Bool(x.to_f64_array().mapv(|v| (p && v == f64::INFINITY) || (n && v == f64::NEG_INFINITY)))
            }
            ElementwiseOp::Dropout(d) => {
                if d.from_inputs {
                    dropout_check(opt_input(inputs, 1), opt_input(inputs, 2))?;
                }
                let mut outs = vec![x.clone()];
                if d.n_outputs >= 2 {
                    let ones = Tensor::Bool(ndarray::ArrayD::from_elem(x.shape(), true));
                    outs.push(if d.bool_mask { ones } else { elementwise_cast::cast(&ones, x.dtype(), CAST_DEFAULT)? });
                }
                return Ok(outs);
            }
        };
        Ok(vec![out])
    }

    fn passthrough(&self, inputs: &[Option<TypeInfo>]) -> Option<usize> {
        let dtype = |i: usize| inputs.get(i).and_then(|t| t.as_ref()).map(|t| t.dtype);
        match self {
            ElementwiseOp::Cast { to, .. } if dtype(0) == Some(*to) => Some(0),
            ElementwiseOp::CastLike(_) if dtype(0).is_some() && dtype(0) == dtype(1) => Some(0),
            ElementwiseOp::Dropout(_) => Some(0),
            _ => None,
        }
    }
}

const CAST_DEFAULT: CastMode = CastMode { saturate: true, round: E8M0Round::Up };

fn same_type(op: &str, a: &TypeInfo, b: &TypeInfo) -> Result<(), OpError> {
    if a.dtype != b.dtype {
        return Err(OpError::invalid(format!("{op} inputs have different types {} and {}", a.dtype, b.dtype)));
    }
    Ok(())
}

/// Training-mode dropout is random: edgec only runs it when it is the identity
/// (`training_mode` false or absent, or `ratio` 0). During inference a non-constant
/// `training_mode` is `None` here and is checked again at evaluation.
fn dropout_check(ratio: Option<&Tensor>, training: Option<&Tensor>) -> Result<(), OpError> {
    let Some(training) = training else { return Ok(()) };
    let training = training.to_f64_vec().iter().any(|&v| v != 0.0);
    let ratio = ratio.and_then(|r| r.to_f64_vec().first().copied()).unwrap_or(0.5);
    if training && ratio != 0.0 {
        return Err(OpError::unsupported("Dropout in training mode with a nonzero ratio (random output)"));
    }
    Ok(())
}
