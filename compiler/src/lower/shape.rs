//! Lowering of the shape family to KIR. (Not yet written: every op reports unsupported.)

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ops::shape::ShapeOp;

pub fn lower(op: &ShapeOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let _ = (op, cx, ins, outs);
    Err(OpError::unsupported("code generation for this op is not implemented yet"))
}
