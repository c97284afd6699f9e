//! Typed errors of the edgec library. The CLI turns them into messages and exit codes.

use thiserror::Error;

/// What an op reports about itself: raised by parsing, inference and evaluation, and
/// wrapped into [`Error::Node`] with the node's identity by the caller.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum OpError {
    /// edgec has no implementation for this op, attribute value or type combination.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The node is malformed (a missing attribute, inputs of incompatible shapes ...).
    #[error("{0}")]
    Invalid(String),
    /// An output's shape depends on the values of a non-constant input.
    #[error("the output shape depends on the values of {0}, which are only known at run time; edgec needs static shapes: make that input a constant (an initializer) or fix the shapes that lead to it")]
    DataDependent(String),
}

impl OpError {
    pub fn unsupported(msg: impl Into<String>) -> Self {
        OpError::Unsupported(msg.into())
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        OpError::Invalid(msg.into())
    }
}

/// A library error. Every variant's message names what is wrong and what to do.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write '{path}': {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a decodable ONNX protobuf (truncated, not protobuf, ...).
    #[error("'{path}' is not a valid ONNX model: {reason}")]
    Decode { path: String, reason: String },
    /// The model decodes but breaks ONNX's rules (dangling names, cycles, bad sizes ...).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The model is valid ONNX that edgec does not handle (an opset, a value type ...).
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// One node failed: names the node, its op type, domain and opset.
    #[error("node '{node}' ({op_type}, domain '{domain}', opset {opset}): {source}")]
    Node {
        node: String,
        op_type: String,
        domain: String,
        opset: i64,
        #[source]
        source: OpError,
    },
    /// Several nodes have no implementation (loading collects all of them).
    #[error("{} unsupported node(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Unsupported(Vec<Error>),
    /// An input's shape still has a symbolic or unknown dimension.
    #[error("input '{input}' has the unresolved dimension '{symbol}' (axis {axis} of {shape}); fix it with --dim {symbol}=VALUE or --input-shape {input}=D0,D1,...")]
    UnresolvedDim { input: String, symbol: String, axis: usize, shape: String },
    /// A caller-side mistake: a `--dim` for no symbol, an input of the wrong size ...
    #[error("{0}")]
    Usage(String),
    /// The compiled model exceeds the target's flash or RAM budget (the message says
    /// which and by how much).
    #[error("{0}")]
    DoesNotFit(String),
    /// A bug in edgec itself, caught by the validator or an internal consistency check.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// True when the failure is edgec lacking support, not the model being wrong.
    pub fn is_unsupported(&self) -> bool {
        match self {
            Error::UnsupportedModel(_) | Error::Unsupported(_) => true,
            Error::Node { source, .. } => {
                matches!(source, OpError::Unsupported(_) | OpError::DataDependent(_))
            }
            _ => false,
        }
    }

    /// The contract's exit code: 1 invalid or unsupported model or inputs, 2 usage.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
