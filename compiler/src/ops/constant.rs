//! `Constant`: a value written into the graph. The frontend decodes its attribute
//! (every `value_*` form); the constant folder then turns it into a plain constant.

use std::sync::Arc;

use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub struct Constant(pub Arc<Tensor>);

pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if ctx.op_type != "Constant" || !ctx.is_default_domain() {
        return None;
    }
    Some(parse_value(ctx).map(|t| Op::Constant(Constant(Arc::new(t)))))
}

fn parse_value(ctx: &NodeCtx) -> Result<Tensor, OpError> {
    if let Some(t) = ctx.tensor("value")? {
        return Ok(t);
    }
    if let Some(t) = ctx.sparse_tensor("sparse_value")? {
        return Ok(t);
    }
    if let Some(v) = ctx.float("value_float")? {
        return Ok(Tensor::scalar(v));
    }
    if let Some(v) = ctx.floats("value_floats")? {
        return Ok(Tensor::from_vec(&[v.len()], v));
    }
    if let Some(v) = ctx.int("value_int")? {
        return Ok(Tensor::scalar(v));
    }
    if let Some(v) = ctx.ints("value_ints")? {
        return Ok(Tensor::from_vec(&[v.len()], v));
    }
    if ctx.has_attr("value_string") || ctx.has_attr("value_strings") {
        return Err(OpError::unsupported("string tensors (value_string/value_strings)"));
    }
    Err(OpError::invalid("Constant has none of the value attributes"))
}

impl Semantics for Constant {
    fn infer(&self, _ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        Ok(vec![self.0.type_info()])
    }
    fn eval(&self, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        Ok(vec![(*self.0).clone()])
    }
}
