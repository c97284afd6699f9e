//! Shape/type inference and constant folding, in one sweep in topological order.
//!
//! The two are one pass because each feeds the other: PyTorch exports compute shapes
//! at run time (Shape → Gather → Unsqueeze → Concat → Reshape, Range,
//! ConstantOfShape ...). Once input shapes are fixed, `Shape` folds from the inferred
//! type, the arithmetic on it folds from constants, and the `Reshape` that reads it
//! gets a static output type — all in the same walk.

use std::sync::Arc;

use crate::error::{Error, OpError, Result};
use crate::eval::eval_node;
use crate::ir::{Graph, NodeId, Tensor, TypeInfo};
use crate::ops::{InferCtx, Op, Semantics};

/// Folding stops at outputs larger than this (bytes) unless they are no larger than
/// the constants they come from: a compile must not turn `Expand` of a scalar into
/// megabytes of weights.
pub const FOLD_LIMIT: usize = 1 << 20;

pub fn propagate(g: &mut Graph) -> Result<()> {
    let order = g
        .topo_order()
        .map_err(|n| Error::InvalidModel(format!("cycle through node '{}'", g.node(n).name)))?;
    for n in order {
        visit(g, n)?;
    }
    Ok(())
}

fn node_error(g: &Graph, n: NodeId, source: OpError) -> Error {
    let node = g.node(n);
    Error::Node {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        domain: if node.domain.is_empty() { "ai.onnx".into() } else { node.domain.clone() },
        opset: node.opset,
        source,
    }
}

fn visit(g: &mut Graph, n: NodeId) -> Result<()> {
    let node = g.node(n);
    let mut types: Vec<Option<TypeInfo>> = Vec::with_capacity(node.inputs.len());
    let mut consts: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(node.inputs.len());
    for i in &node.inputs {
        match i {
            None => {
                types.push(None);
                consts.push(None);
            }
            Some(v) => {
                let val = g.value(*v);
                let ty = val.ty.clone().ok_or_else(|| {
                    Error::Internal(format!("'{}' read by node '{}' has no type", val.name, node.name))
                })?;
                types.push(Some(ty));
                consts.push(val.constant.clone());
            }
        }
    }
    if let Op::Unsupported(why) = &node.op {
        return Err(node_error(g, n, OpError::Unsupported(why.clone())));
    }

    // Outputs decided by input types alone (Shape, Size).
    if let Some(values) = node.op.value_from_types(&types) {
        return fold(g, n, values.into_iter().map(Arc::new).collect());
    }

    let all_const = node.inputs.iter().zip(&consts).all(|(i, c)| i.is_none() || c.is_some());
    let const_bytes: usize = consts.iter().flatten().map(|c| c.byte_len()).sum();
    let const_refs: Vec<Option<&Tensor>> = consts.iter().map(|c| c.as_deref()).collect();
    let ctx = InferCtx { inputs: &types, consts: &const_refs, n_outputs: node.outputs.len() };
    let out_types = node.op.infer(&ctx).map_err(|e| node_error(g, n, e))?;
    let used = node.outputs.iter().enumerate().filter(|(_, o)| o.is_some()).map(|(k, _)| k).max();
    if let Some(k) = used {
        if out_types.len() <= k {
            return Err(Error::Internal(format!(
                "inference for node '{}' ({}) gave {} types, output {k} is used",
                node.name,
                node.op_type,
                out_types.len()
            )));
        }
    }
    for t in &out_types {
        if t.bytes().is_none() {
            return Err(node_error(g, n, OpError::invalid(format!("output shape {:?} is too large to address", t.shape))));
        }
    }
    let out_bytes: usize = out_types.iter().map(|t| t.bytes().unwrap_or(usize::MAX)).fold(0, usize::saturating_add);
    let foldable = all_const && node.op.is_deterministic() && (out_bytes <= FOLD_LIMIT || out_bytes <= const_bytes);
    let outputs = node.outputs.clone();
    for (slot, ty) in outputs.iter().zip(out_types) {
        if let Some(v) = slot {
            g.value_mut(*v).ty = Some(ty);
        }
    }
    if foldable {
        let mut env: Vec<Option<Arc<Tensor>>> = vec![None; g.values.len()];
        for (i, c) in g.node(n).inputs.iter().zip(consts) {
            if let (Some(v), Some(c)) = (i, c) {
                env[v.0 as usize] = Some(c);
            }
        }
        eval_node(g, n, &mut env)?;
        let values = outputs.iter().map(|o| o.and_then(|v| env[v.0 as usize].clone())).collect::<Vec<_>>();
        let values: Vec<Arc<Tensor>> = values.into_iter().map(|v| v.unwrap_or_else(|| Arc::new(Tensor::scalar(0f32)))).collect();
        return fold(g, n, values);
    }
    Ok(())
}

/// Replaces node `n` by constants for its used outputs.
fn fold(g: &mut Graph, n: NodeId, values: Vec<Arc<Tensor>>) -> Result<()> {
    let outputs = g.node(n).outputs.clone();
    for (k, slot) in outputs.iter().enumerate() {
        let Some(v) = slot else { continue };
        let t = values.get(k).cloned().ok_or_else(|| {
            Error::Internal(format!("folding node '{}' gave no value for output {k}", g.node(n).name))
        })?;
        g.set_constant(*v, t);
    }
    g.remove_node(n);
    Ok(())
}
