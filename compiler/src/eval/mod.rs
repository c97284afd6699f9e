//! The reference evaluator: runs a graph on the host, node by node, with each op's
//! [`Semantics::eval`]. It is the constant folder's engine and the conformance oracle;
//! it needs no inferred types, so it also runs graphs whose shapes depend on data.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Tensor};
use crate::ops::Semantics;

/// Runs `graph` on `inputs` (one per graph input, in order) and returns its outputs.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    if inputs.len() != graph.inputs.len() {
        return Err(Error::Usage(format!(
            "the model has {} inputs, {} were given",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let mut env: Vec<Option<Arc<Tensor>>> = graph.values.iter().map(|v| v.constant.clone()).collect();
    for (&id, t) in graph.inputs.iter().zip(inputs) {
        let v = graph.value(id);
        if let Some(ty) = &v.ty {
            if ty.dtype != t.dtype() || ty.shape != t.shape() {
                return Err(Error::Usage(format!(
                    "input '{}' must be {ty}, got {}",
                    v.name,
                    t.type_info()
                )));
            }
        } else if let Some(d) = &v.declared {
            if d.dtype != t.dtype() {
                return Err(Error::Usage(format!("input '{}' must be {}, got {}", v.name, d.dtype, t.dtype())));
            }
        }
        env[id.0 as usize] = Some(Arc::new(t.clone()));
    }
    let order = graph
        .topo_order()
        .map_err(|n| Error::InvalidModel(format!("cycle through node '{}'", graph.node(n).name)))?;
    for n in order {
        eval_node(graph, n, &mut env)?;
    }
    graph
        .outputs
        .iter()
        .map(|o| {
            env[o.0 as usize]
                .as_ref()
                .map(|t| (**t).clone())
                .ok_or_else(|| Error::Internal(format!("output '{}' was not computed", graph.value(*o).name)))
        })
        .collect()
}

/// Evaluates one node on the values in `env` and stores its outputs there.
pub fn eval_node(graph: &Graph, n: NodeId, env: &mut [Option<Arc<Tensor>>]) -> Result<()> {
    let node = graph.node(n);
    let node_err = |source| Error::Node {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        domain: if node.domain.is_empty() { "ai.onnx".into() } else { node.domain.clone() },
        opset: node.opset,
        source,
    };
    let args: Vec<Option<Arc<Tensor>>> = node
        .inputs
        .iter()
        .map(|i| i.map(|v| env[v.0 as usize].clone().ok_or(v)).transpose())
        .collect::<std::result::Result<_, _>>()
        .map_err(|v| Error::Internal(format!("node '{}' reads '{}' before it is computed", node.name, graph.value(v).name)))?;
    let refs: Vec<Option<&Tensor>> = args.iter().map(|a| a.as_deref()).collect();
    let outs = node.op.eval(&refs).map_err(node_err)?;
    for (k, slot) in node.outputs.iter().enumerate() {
        let Some(v) = slot else { continue };
        let t = outs.get(k).ok_or_else(|| {
            Error::Internal(format!("node '{}' ({}) produced {} outputs, output {k} is used", node.name, node.op_type, outs.len()))
        })?;
        if let Some(ty) = &graph.value(*v).ty {
            if ty.dtype != t.dtype() || ty.shape != t.shape() {
                return Err(Error::Internal(format!(
                    "node '{}' ({}) output {k}: inference said {ty}, evaluation gave {}",
                    node.name,
                    node.op_type,
                    t.type_info()
                )));
            }
        }
        env[v.0 as usize] = Some(Arc::new(t.clone()));
    }
    Ok(())
}
