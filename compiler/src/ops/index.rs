//! The index family. (Not yet implemented: every op of it is reported as unsupported.)

use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum IndexOp {}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let _ = ctx;
    None
}

impl Semantics for IndexOp {
    fn infer(&self, _ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match *self {}
    }
    fn eval(&self, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match *self {}
    }
}
