//! The ONNX frontend: protobuf (decoded by `onnx-protobuf`) → [`Graph`].
//!
//! It checks what the file claims (IR version, opsets, names, sizes), decodes every
//! initializer and constant, and asks [`crate::ops::parse`] for a typed op per node.
//! Nodes edgec cannot handle are kept as [`Op::Unsupported`] and listed in
//! [`Model::unsupported`], so `inspect` can show all of them at once; [`Model::check_supported`]
//! turns them into one error for the compiler.

mod functions;
mod node;
mod tensor;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use onnx_protobuf::{type_proto, GraphProto, Message, ModelProto, ValueInfoProto};

pub use node::NodeCtx;
pub use tensor::{checked_numel, decode as decode_tensor, DataDir};

use crate::error::{Error, OpError, Result};
use crate::ir::{DType, Declared, DimSpec, Graph, Node, Tensor, ValueId};
use crate::ops::{self, Op};

/// Default-domain opsets edgec reads. Each op's parser handles the version differences
/// of its op within this range.
pub const MIN_OPSET: i64 = 1;
pub const MAX_OPSET: i64 = 27;
/// IR versions edgec reads (3 = ONNX 1.0 with opset imports).
pub const MIN_IR_VERSION: i64 = 3;
pub const MAX_IR_VERSION: i64 = 13;

/// A loaded model.
#[derive(Debug)]
pub struct Model {
    pub graph: Graph,
    pub ir_version: i64,
    pub producer: String,
    /// One [`Error::Node`] per node without an implementation.
    pub unsupported: Vec<Error>,
}

impl Model {
    /// Fails, listing every unsupported node, unless the whole model is supported.
    pub fn check_supported(&self) -> Result<()> {
        match self.unsupported.len() {
            0 => Ok(()),
            _ => Err(Error::Unsupported(self.unsupported.iter().map(clone_node_error).collect())),
        }
    }
}

fn clone_node_error(e: &Error) -> Error {
    match e {
        Error::Node { node, op_type, domain, opset, source } => Error::Node {
            node: node.clone(),
            op_type: op_type.clone(),
            domain: domain.clone(),
            opset: *opset,
            source: source.clone(),
        },
        other => Error::UnsupportedModel(other.to_string()),
    }
}

/// Loads a model file; external data is read relative to its directory.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let dir = DataDir(Some(path.parent().map(|p| p.to_path_buf()).unwrap_or_default()));
    load_bytes(&bytes, &dir).map_err(|e| match e {
        Error::Decode { reason, .. } => Error::Decode { path: path.display().to_string(), reason },
        e => e,
    })
}

/// Loads a model from memory.
pub fn load_bytes(bytes: &[u8], dir: &DataDir) -> Result<Model> {
    let decode_err = |reason: String| Error::Decode { path: "<memory>".into(), reason };
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".into()));
    }
    let mut proto = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        decode_err(format!("protobuf decoding failed ({e}); the file is truncated or not an ONNX model"))
    })?;
    if proto.ir_version < MIN_IR_VERSION || proto.ir_version > MAX_IR_VERSION {
        return Err(Error::UnsupportedModel(format!(
            "IR version {}; edgec reads IR versions {MIN_IR_VERSION} to {MAX_IR_VERSION} (re-export the model with a current exporter)",
            proto.ir_version
        )));
    }
    if proto.opset_import.is_empty() {
        return Err(Error::InvalidModel(
            "the model imports no opset (opset_import is empty): the file is truncated or was not written by an ONNX exporter".into(),
        ));
    }
    let mut opsets = BTreeMap::new();
    for o in &proto.opset_import {
        let domain = if o.domain == "ai.onnx" { String::new() } else { o.domain.clone() };
        opsets.insert(domain, o.version);
    }
    if let Some(&v) = opsets.get("") {
        if !(MIN_OPSET..=MAX_OPSET).contains(&v) {
            return Err(Error::UnsupportedModel(format!(
                "default-domain opset {v}; edgec supports opsets {MIN_OPSET} to {MAX_OPSET} (convert the model with onnx.version_converter)"
            )));
        }
    }
    let mut graph_proto = proto.graph.take().ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    functions::inline_functions(&mut graph_proto, &proto.functions)?;
    let graph_proto = &graph_proto;
    let mut importer = Importer { dir, opsets: &opsets, unsupported: Vec::new() };
    let (mut graph, _) = importer.import(graph_proto, None)?;
    graph.opsets = opsets.clone();
    Ok(Model { graph, ir_version: proto.ir_version, producer: proto.producer_name.clone(), unsupported: importer.unsupported })
}

struct Importer<'a> {
    dir: &'a DataDir,
    opsets: &'a BTreeMap<String, i64>,
    unsupported: Vec<Error>,
}

/// The declared type of a graph input/output or value_info entry.
fn declared_type(v: &ValueInfoProto, what: &str) -> Result<Option<Declared>> {
    let Some(tp) = v.type_.as_ref() else { return Ok(None) };
    match &tp.value {
        None => Ok(None),
        Some(type_proto::Value::TensorType(t)) => {
            let dtype = DType::from_onnx(t.elem_type).ok_or_else(|| {
                Error::UnsupportedModel(format!(
                    "{what} '{}' has element type {}; edgec handles numeric and bool tensors",
                    v.name,
                    DType::onnx_code_name(t.elem_type)
                ))
            })?;
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(n)) if *n >= 0 => {
                            Ok(DimSpec::Fixed(*n as usize))
                        }
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(n)) => Err(
                            Error::InvalidModel(format!("{what} '{}' has the negative dimension {n}", v.name)),
                        ),
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                            Ok(DimSpec::Symbol(p.clone()))
                        }
                        _ => Ok(DimSpec::Unknown),
                    })
                    .collect::<Result<Vec<_>>>()
            });
            Ok(Some(Declared { dtype, dims: dims.transpose()? }))
        }
        Some(_) => Err(Error::UnsupportedModel(format!(
            "{what} '{}' is a sequence, map or optional; edgec handles tensors only",
            v.name
        ))),
    }
}

/// Answers whether a name is visible in an enclosing graph (for subgraph captures).
pub type OuterScope<'a> = &'a dyn Fn(&str) -> bool;

/// A control-flow body: a graph whose `inputs` are its formal inputs followed by one
/// value per name it reads from enclosing graphs (`captures`, in the same order). The
/// node that owns the body passes those outer values as extra inputs.
#[derive(Clone, Debug)]
pub struct SubGraph {
    pub graph: Graph,
    pub n_formal_inputs: usize,
    pub captures: Vec<String>,
}

/// Imports a subgraph attribute of the node `ctx` describes. Names the body reads from
/// enclosing graphs become captures.
pub fn import_subgraph(ctx: &NodeCtx, g: &GraphProto) -> std::result::Result<SubGraph, OpError> {
    let visible = ctx.outer.ok_or_else(|| OpError::invalid("subgraph outside a graph"))?;
    let opsets = ctx.opsets.ok_or_else(|| OpError::invalid("subgraph outside a model"))?;
    let mut importer = Importer { dir: ctx.data_dir, opsets, unsupported: Vec::new() };
    let (mut graph, captures) = importer.import(g, Some(visible)).map_err(|e| match e {
        Error::Node { source: e @ OpError::Unsupported(_), .. } => e,
        e if e.is_unsupported() => OpError::Unsupported(format!("in subgraph '{}': {e}", g.name)),
        e => OpError::Invalid(format!("in subgraph '{}': {e}", g.name)),
    })?;
    if let Some(first) = importer.unsupported.first() {
        return Err(OpError::Unsupported(format!("in subgraph '{}': {first}", g.name)));
    }
    graph.opsets = opsets.clone();
    let n_formal_inputs = graph.inputs.len() - captures.len();
    Ok(SubGraph { graph, n_formal_inputs, captures })
}

impl Importer<'_> {
    /// Imports a graph. With `outer`, names not defined locally but visible outside are
    /// captured: each becomes an extra graph input, listed in the returned names.
    fn import(&mut self, g: &GraphProto, outer: Option<OuterScope>) -> Result<(Graph, Vec<String>)> {
        let mut graph = Graph::default();
        let mut scope: HashMap<String, ValueId> = HashMap::new();
        let mut captures: Vec<String> = Vec::new();
        let define = |scope: &mut HashMap<String, ValueId>, name: &str, id: ValueId, by: &str| {
            if scope.insert(name.to_string(), id).is_some() {
                return Err(Error::InvalidModel(format!("value '{name}' is defined twice (again by {by})")));
            }
            Ok(())
        };

        for t in &g.initializer {
            let value = tensor::decode(t, self.dir)
                .map_err(|e| Error::InvalidModel(format!("initializer '{}': {e}", t.name)))?;
            let id = graph.add_constant(&t.name, value);
            define(&mut scope, &t.name, id, "an initializer")?;
        }
        for s in &g.sparse_initializer {
            let name = s.values.as_ref().map(|v| v.name.clone()).unwrap_or_default();
            let value = tensor::decode_sparse(s, self.dir)
                .map_err(|e| Error::InvalidModel(format!("sparse initializer '{name}': {e}")))?;
            let id = graph.add_constant(&name, value);
            define(&mut scope, &name, id, "a sparse initializer")?;
        }
        for input in &g.input {
            let declared = declared_type(input, "input")?;
            if let Some(&id) = scope.get(&input.name) {
                // An input with an initializer is a constant with a default value: edgec
                // compiles it as the constant (ONNX IR >= 4 semantics).
                if let (Some(d), Some(c)) = (&declared, &graph.value(id).constant) {
                    if d.dtype != c.dtype() {
                        return Err(Error::InvalidModel(format!(
                            "input '{}' is declared {} but its initializer is {}",
                            input.name,
                            d.dtype,
                            c.dtype()
                        )));
                    }
                }
                continue;
            }
            if declared.is_none() && outer.is_none() {
                return Err(Error::InvalidModel(format!("graph input '{}' has no tensor type", input.name)));
            }
            let id = graph.add_value(&input.name);
            graph.value_mut(id).declared = declared;
            define(&mut scope, &input.name, id, "a graph input")?;
            graph.inputs.push(id);
        }

        // Outputs of every node first: a file need not list nodes in order.
        let mut node_outputs = Vec::with_capacity(g.node.len());
        for (k, n) in g.node.iter().enumerate() {
            let label = node_label(n, k);
            let mut outs = Vec::with_capacity(n.output.len());
            for o in &n.output {
                if o.is_empty() {
                    outs.push(None);
                    continue;
                }
                let id = graph.add_value(o);
                define(&mut scope, o, id, &format!("node '{label}'"))?;
                outs.push(Some(id));
            }
            node_outputs.push(outs);
        }
        for v in &g.value_info {
            if let Some(&id) = scope.get(&v.name) {
                if let Ok(Some(d)) = declared_type(v, "value") {
                    graph.value_mut(id).declared.get_or_insert(d);
                }
            }
        }

        for (k, (n, outputs)) in g.node.iter().zip(node_outputs).enumerate() {
            let label = node_label(n, k);
            let mut inputs = Vec::with_capacity(n.input.len());
            for i in &n.input {
                if i.is_empty() {
                    inputs.push(None);
                    continue;
                }
                let id = resolve(&mut graph, &mut scope, &mut captures, outer, i).ok_or_else(|| {
                    Error::InvalidModel(format!(
                        "node '{label}' ({}) reads '{i}', which no node, graph input or initializer defines",
                        n.op_type
                    ))
                })?;
                inputs.push(Some(id));
            }
            let domain = if n.domain == "ai.onnx" { "" } else { n.domain.as_str() };
            let node_err = |opset: i64, source: OpError| Error::Node {
                node: label.clone(),
                op_type: n.op_type.clone(),
                domain: if domain.is_empty() { "ai.onnx".into() } else { domain.to_string() },
                opset,
                source,
            };
            let op = match self.opsets.get(domain) {
                None => {
                    let e = node_err(0, OpError::unsupported(format!(
                        "the model does not import domain '{}'",
                        if domain.is_empty() { "ai.onnx" } else { domain }
                    )));
                    let op = Op::Unsupported(e.to_string());
                    self.unsupported.push(e);
                    op
                }
                Some(&opset) => {
                    let visible = |name: &str| scope.contains_key(name) || outer.is_some_and(|f| f(name));
                    let ctx = NodeCtx {
                        outer: Some(&visible),
                        opsets: Some(self.opsets),
                        name: &label,
                        op_type: &n.op_type,
                        domain,
                        opset,
                        inputs_present: n.input.iter().map(|s| !s.is_empty()).collect(),
                        outputs_present: n.output.iter().map(|s| !s.is_empty()).collect(),
                        attrs: &n.attribute,
                        data_dir: self.dir,
                        proto: n,
                    };
                    match ops::parse(&ctx) {
                        Ok(op) => op,
                        Err(e @ OpError::Unsupported(_)) => {
                            let e = node_err(opset, e);
                            let op = Op::Unsupported(e.to_string());
                            self.unsupported.push(e);
                            op
                        }
                        Err(e) => return Err(node_err(opset, e)),
                    }
                }
            };
            // A control-flow node also reads what its bodies capture.
            for name in op.captured_names() {
                let id = resolve(&mut graph, &mut scope, &mut captures, outer, &name).ok_or_else(|| {
                    Error::InvalidModel(format!("node '{label}' ({}): a subgraph reads '{name}', which is not defined", n.op_type))
                })?;
                inputs.push(Some(id));
            }
            let opset = self.opsets.get(domain).copied().unwrap_or(0);
            graph.add_node(Node {
                name: label,
                op,
                op_type: n.op_type.clone(),
                domain: domain.to_string(),
                opset,
                inputs,
                outputs,
            });
        }

        for o in &g.output {
            let id = resolve(&mut graph, &mut scope, &mut captures, outer, &o.name).ok_or_else(|| {
                Error::InvalidModel(format!("graph output '{}' is not produced by any node, input or initializer", o.name))
            })?;
            if let Some(d) = declared_type(o, "output")? {
                graph.value_mut(id).declared = Some(d);
            }
            graph.outputs.push(id);
        }

        graph.rebuild_edges();
        if let Err(n) = graph.topo_order() {
            return Err(Error::InvalidModel(format!(
                "the graph has a cycle through node '{}' ({})",
                graph.node(n).name,
                graph.node(n).op_type
            )));
        }
        Ok((graph, captures))
    }
}

/// Looks a name up locally, else captures it from the enclosing graphs: the capture
/// becomes a new graph input (after the formal ones).
fn resolve(
    graph: &mut Graph,
    scope: &mut HashMap<String, ValueId>,
    captures: &mut Vec<String>,
    outer: Option<OuterScope>,
    name: &str,
) -> Option<ValueId> {
    if let Some(&id) = scope.get(name) {
        return Some(id);
    }
    if !outer.is_some_and(|f| f(name)) {
        return None;
    }
    let id = graph.add_value(name);
    graph.inputs.push(id);
    scope.insert(name.to_string(), id);
    captures.push(name.to_string());
    Some(id)
}

fn node_label(n: &onnx_protobuf::NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// Reads one `TensorProto` file (the backend-test `input_N.pb` layout).
pub fn read_tensor_file(path: &Path) -> Result<(String, Tensor)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let t = onnx_protobuf::TensorProto::parse_from_bytes(&bytes).map_err(|e| Error::Decode {
        path: path.display().to_string(),
        reason: format!("not a TensorProto: {e}"),
    })?;
    let dir = DataDir(path.parent().map(|p| p.to_path_buf()));
    let value = tensor::decode(&t, &dir).map_err(|e| Error::Decode { path: path.display().to_string(), reason: e })?;
    Ok((t.name.clone(), value))
}
