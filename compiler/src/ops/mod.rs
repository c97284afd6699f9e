//! Operator semantics: the one place that says what each op means.
//!
//! Ops are grouped in families, one module each. A family module holds, for each of its
//! ops, everything edgec knows about it:
//! - `parse`: ONNX node (attributes, opset differences) → typed op;
//! - [`Semantics::infer`]: static output types from input types (and constant inputs);
//! - [`Semantics::eval`]: the reference implementation, which is both the constant
//!   folder's engine and the conformance oracle — exact, not fast.
//!
//! Backends lower these typed ops; they never re-derive shapes or re-read attributes.

use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};

pub mod util;

pub mod attention;
pub mod blockquant;
pub mod blockquant_format;
pub mod constant;
pub mod control;
pub mod conv;
pub mod elementwise;
pub mod image;
pub mod index;
pub mod linalg;
pub mod normalize;
pub mod pool;
pub mod qint8;
pub mod quant;
pub mod reduce;
pub mod rnn;
pub mod shape;
pub mod signal;

/// What inference sees of a node's inputs.
pub struct InferCtx<'a> {
    /// Input types; `None` for an omitted optional input.
    pub inputs: &'a [Option<TypeInfo>],
    /// Values of the inputs that are constants.
    pub consts: &'a [Option<&'a Tensor>],
    /// Number of outputs the node declares (used or not).
    pub n_outputs: usize,
}

impl InferCtx<'_> {
    /// The type of input `i`, or an error naming it when it is missing.
    pub fn input(&self, i: usize) -> Result<&TypeInfo, OpError> {
        self.inputs
            .get(i)
            .and_then(|t| t.as_ref())
            .ok_or_else(|| OpError::invalid(format!("input {i} is required but missing")))
    }

    /// The type of optional input `i`, `None` when omitted.
    pub fn opt_input(&self, i: usize) -> Option<&TypeInfo> {
        self.inputs.get(i).and_then(|t| t.as_ref())
    }

    /// The constant value of input `i`, if it is one.
    pub fn konst(&self, i: usize) -> Option<&Tensor> {
        self.consts.get(i).copied().flatten()
    }

    /// The integer values of input `i` (shape, axes, pads ...): `Ok(None)` when the
    /// input is omitted, [`OpError::DataDependent`] when it is present but not constant.
    pub fn const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        if self.opt_input(i).is_none() {
            return Ok(None);
        }
        match self.konst(i) {
            Some(t) => t
                .to_i64_vec()
                .map(Some)
                .ok_or_else(|| OpError::invalid(format!("input {i} ({what}) must be an integer tensor"))),
            None => Err(OpError::DataDependent(format!("input {i} ({what})"))),
        }
    }
}

/// The semantics every op implements. `eval` receives exactly the node's inputs
/// (`None` for omitted optional ones) and returns its outputs in order; it may return
/// fewer only for trailing optional outputs the node does not declare.
pub trait Semantics {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError>;
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError>;
    /// `Some(i)` when output 0 is input `i` unchanged for these input types (Identity,
    /// a Reshape to the same shape, ...): the simplifier then drops the node.
    fn passthrough(&self, _inputs: &[Option<TypeInfo>]) -> Option<usize> {
        None
    }
    /// The outputs, when the input *types* alone decide them (Shape, Size): the folder
    /// then replaces the node by constants even though its inputs are not constant.
    fn value_from_types(&self, _inputs: &[Option<TypeInfo>]) -> Option<Vec<Tensor>> {
        None
    }
}

/// A typed op. One variant per family; the family enums carry the attributes.
#[derive(Clone, Debug)]
pub enum Op {
    Constant(constant::Constant),
    Control(control::ControlOp),
    Elementwise(elementwise::ElementwiseOp),
    Reduce(reduce::ReduceOp),
    Normalize(normalize::NormalizeOp),
    Signal(signal::SignalOp),
    Linalg(linalg::LinalgOp),
    Conv(conv::ConvOp),
    Pool(pool::PoolOp),
    Quant(quant::QuantOp),
    Shape(shape::ShapeOp),
    Index(index::IndexOp),
    Image(image::ImageOp),
    Attention(attention::AttentionOp),
    Rnn(rnn::RnnOp),
    /// The internal int8 integer kernel (made by the quantisation passes, never parsed).
    Int8(qint8::Int8Kernel),
    /// MatMul/Gemm/Gather on block-quantized weights (made by `passes::quantize_weights`).
    BlockQuant(blockquant::BlockQuantOp),
    /// A node edgec cannot handle, kept so `inspect` can list every one of them;
    /// inference and evaluation fail with the reason.
    Unsupported(String),
}

macro_rules! dispatch {
    ($self:expr, $o:ident => $body:expr, $unsupported:ident => $ubody:expr) => {
        match $self {
            Op::Constant($o) => $body,
            Op::Control($o) => $body,
            Op::Elementwise($o) => $body,
            Op::Reduce($o) => $body,
            Op::Normalize($o) => $body,
            Op::Signal($o) => $body,
            Op::Linalg($o) => $body,
            Op::Conv($o) => $body,
            Op::Pool($o) => $body,
            Op::Quant($o) => $body,
            Op::Shape($o) => $body,
            Op::Index($o) => $body,
            Op::Image($o) => $body,
            Op::Attention($o) => $body,
            Op::Rnn($o) => $body,
            Op::Int8($o) => $body,
            Op::BlockQuant($o) => $body,
            Op::Unsupported($unsupported) => $ubody,
        }
    };
}

impl Semantics for Op {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        dispatch!(self, o => o.infer(ctx), why => Err(OpError::Unsupported(why.clone())))
    }
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        dispatch!(self, o => o.eval(inputs), why => Err(OpError::Unsupported(why.clone())))
    }
    fn passthrough(&self, inputs: &[Option<TypeInfo>]) -> Option<usize> {
        dispatch!(self, o => o.passthrough(inputs), _why => None)
    }
    fn value_from_types(&self, inputs: &[Option<TypeInfo>]) -> Option<Vec<Tensor>> {
        dispatch!(self, o => o.value_from_types(inputs), _why => None)
    }
}

impl Op {
    /// Names a control-flow op's bodies read from enclosing graphs, in the order the node
    /// passes them as extra inputs after its formal ones.
    pub fn captured_names(&self) -> Vec<String> {
        match self {
            Op::Control(c) => c.captured_names(),
            _ => Vec::new(),
        }
    }

    /// Ops whose result is not a function of their inputs (random generators) must not
    /// be folded or deduplicated.
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, Op::Unsupported(_))
    }
}

/// Reads an ONNX node into a typed op: each family is asked in turn; the first that
/// knows the (domain, op type) decides.
pub fn parse(ctx: &NodeCtx) -> Result<Op, OpError> {
    type Parser = fn(&NodeCtx) -> Option<Result<Op, OpError>>;
    const FAMILIES: &[Parser] = &[
        constant::parse,
        control::parse,
        elementwise::parse,
        reduce::parse,
        normalize::parse,
        signal::parse,
        linalg::parse,
        conv::parse,
        pool::parse,
        quant::parse,
        shape::parse,
        index::parse,
        image::parse,
        attention::parse,
        rnn::parse,
    ];
    for family in FAMILIES {
        if let Some(r) = family(ctx) {
            return r;
        }
    }
    Err(OpError::Unsupported(format!(
        "edgec has no implementation of op '{}' in domain '{}'; replace it in the export or open an issue",
        ctx.op_type,
        if ctx.domain.is_empty() { "ai.onnx" } else { ctx.domain }
    )))
}
