//! What an op parser sees of an ONNX node: identity, opset and typed attribute access.

use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, GraphProto, NodeProto};

use super::tensor::{decode, decode_sparse, DataDir};
use crate::error::OpError;
use crate::ir::Tensor;

pub struct NodeCtx<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    /// The node's domain as written ("" for the default domain).
    pub domain: &'a str,
    /// The version of the node's domain that the model imports.
    pub opset: i64,
    /// Inputs as written: `false` for an omitted optional input ("").
    pub inputs_present: Vec<bool>,
    /// Outputs as written: `false` for an unused optional output ("").
    pub outputs_present: Vec<bool>,
    pub attrs: &'a [AttributeProto],
    pub data_dir: &'a DataDir,
    /// The whole node, for families that need more (control flow reads subgraphs).
    pub proto: &'a NodeProto,
    /// Names visible from this node's graph, for subgraphs to capture.
    pub outer: Option<&'a dyn Fn(&str) -> bool>,
    /// The model's opset imports, for subgraphs.
    pub opsets: Option<&'a std::collections::BTreeMap<String, i64>>,
}

impl<'a> NodeCtx<'a> {
    pub fn is_default_domain(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    /// True when the node is `op` in the default domain.
    pub fn is(&self, op: &str) -> bool {
        self.op_type == op && self.is_default_domain()
    }

    pub fn n_inputs(&self) -> usize {
        self.inputs_present.len()
    }

    pub fn n_outputs(&self) -> usize {
        self.outputs_present.len()
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.inputs_present.get(i).copied().unwrap_or(false)
    }

    pub fn has_output(&self, i: usize) -> bool {
        self.outputs_present.get(i).copied().unwrap_or(false)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The attribute's declared type; old files leave it unset, then the field decides.
    fn kind(a: &AttributeProto) -> Option<AttributeType> {
        match a.type_.enum_value() {
            Ok(AttributeType::UNDEFINED) | Err(_) => None,
            Ok(t) => Some(t),
        }
    }

    fn wrong(name: &str, want: &str) -> OpError {
        OpError::invalid(format!("attribute '{name}' must be {want}"))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::INT) | None => Ok(Some(a.i)),
                _ => Err(Self::wrong(name, "an int")),
            },
        }
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, OpError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::FLOAT) | None => Ok(Some(a.f)),
                // Some exporters write integral floats as ints.
                Some(AttributeType::INT) => Ok(Some(a.i as f32)),
                _ => Err(Self::wrong(name, "a float")),
            },
        }
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, OpError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::INTS) | None => Ok(Some(a.ints.clone())),
                _ => Err(Self::wrong(name, "a list of ints")),
            },
        }
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::FLOATS) | None => Ok(Some(a.floats.clone())),
                _ => Err(Self::wrong(name, "a list of floats")),
            },
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::STRING) | None => Ok(Some(String::from_utf8_lossy(&a.s).into_owned())),
                _ => Err(Self::wrong(name, "a string")),
            },
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String, OpError> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match Self::kind(a) {
                Some(AttributeType::STRINGS) | None => {
                    Ok(Some(a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()))
                }
                _ => Err(Self::wrong(name, "a list of strings")),
            },
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match (Self::kind(a), a.t.as_ref()) {
                (Some(AttributeType::TENSOR) | None, Some(t)) => decode(t, self.data_dir)
                    .map(Some)
                    .map_err(|e| OpError::invalid(format!("attribute '{name}': {e}"))),
                _ => Err(Self::wrong(name, "a tensor")),
            },
        }
    }

    pub fn sparse_tensor(&self, name: &str) -> Result<Option<Tensor>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match a.sparse_tensor.as_ref() {
                Some(s) => decode_sparse(s, self.data_dir)
                    .map(Some)
                    .map_err(|e| OpError::invalid(format!("attribute '{name}': {e}"))),
                None => Err(Self::wrong(name, "a sparse tensor")),
            },
        }
    }

    /// A subgraph attribute (If/Loop/Scan bodies), undecoded.
    pub fn graph(&self, name: &str) -> Option<&'a GraphProto> {
        self.attr(name).and_then(|a| a.g.as_ref())
    }

    /// An attribute that is required.
    pub fn required<T>(&self, name: &str, v: Result<Option<T>, OpError>) -> Result<T, OpError> {
        v?.ok_or_else(|| OpError::invalid(format!("required attribute '{name}' is missing")))
    }
}
