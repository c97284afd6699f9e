//! The graph IR: nodes in a petgraph `StableDiGraph`, values in an arena of handles.
//!
//! A node holds its typed [`Op`] and the handles of the values it reads and writes; the
//! graph's edges (producer → consumer, weighted by the value) mirror those handles so
//! petgraph can order and check the graph. Every mutation goes through the methods here,
//! which keep both in step.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::dtype::{DType, DimSpec, TypeInfo};
use super::tensor::Tensor;
use crate::ops::Op;

/// Handle of a value in [`Graph::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

pub type NodeId = NodeIndex<u32>;

/// A type as a model file declares it (graph inputs and outputs, value_info).
#[derive(Clone, Debug, PartialEq)]
pub struct Declared {
    pub dtype: DType,
    /// `None` when the file gives no shape at all.
    pub dims: Option<Vec<DimSpec>>,
}

impl Declared {
    pub fn dims_string(&self) -> String {
        match &self.dims {
            None => "[?]".into(),
            Some(d) => format!("[{}]", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    /// The static type, known after shape inference (and at once for constants).
    pub ty: Option<TypeInfo>,
    /// The type the model file declared, if any.
    pub declared: Option<Declared>,
    pub producer: Option<NodeId>,
    /// Set for initializers and folded values.
    pub constant: Option<Arc<Tensor>>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// Where the node came from: ONNX op type, domain and the opset it was read with.
    pub op_type: String,
    pub domain: String,
    pub opset: i64,
    /// `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// `None` for an output the model does not use (empty name).
    pub outputs: Vec<Option<ValueId>>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: StableDiGraph<Node, ValueId, u32>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Opset imports of the model: domain ("" for the default) → version.
    pub opsets: BTreeMap<String, i64>,
}

impl Graph {
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.0 as usize]
    }

    pub fn value_mut(&mut self, v: ValueId) -> &mut Value {
        &mut self.values[v.0 as usize]
    }

    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n]
    }

    pub fn add_value(&mut self, name: impl Into<String>) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value { name: name.into(), ty: None, declared: None, producer: None, constant: None });
        id
    }

    pub fn add_constant(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let id = self.add_value(name);
        self.set_constant(id, Arc::new(t));
        id
    }

    /// Makes `v` a constant; if a node produced it, that node no longer does.
    pub fn set_constant(&mut self, v: ValueId, t: Arc<Tensor>) {
        if let Some(p) = self.value(v).producer {
            if let Some(slot) = self.nodes[p].outputs.iter_mut().find(|o| **o == Some(v)) {
                *slot = None;
            }
        }
        let val = self.value_mut(v);
        val.ty = Some(t.type_info());
        val.producer = None;
        val.constant = Some(t);
        // Edges leaving the former producer for this value go away.
        let stale: Vec<_> = self.nodes.edge_indices().filter(|&e| self.nodes[e] == v).collect();
        for e in stale {
            self.nodes.remove_edge(e);
        }
    }

    /// Adds a node and wires its edges; its outputs name it as producer.
    pub fn add_node(&mut self, node: Node) -> NodeId {
        let inputs: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
        let outputs: Vec<ValueId> = node.outputs.iter().flatten().copied().collect();
        let id = self.nodes.add_node(node);
        for o in outputs {
            self.value_mut(o).producer = Some(id);
        }
        for i in inputs {
            if let Some(p) = self.value(i).producer {
                self.nodes.add_edge(p, id, i);
            }
        }
        id
    }

    /// Recomputes every edge from the nodes' inputs: for a frontend that added nodes in
    /// file order, which need not be topological.
    pub fn rebuild_edges(&mut self) {
        self.nodes.clear_edges();
        let wires: Vec<(NodeId, NodeId, ValueId)> = self
            .nodes
            .node_indices()
            .flat_map(|n| self.nodes[n].inputs.iter().flatten().map(move |&v| (n, v)))
            .filter_map(|(n, v)| self.value(v).producer.map(|p| (p, n, v)))
            .collect();
        for (p, n, v) in wires {
            self.nodes.add_edge(p, n, v);
        }
    }

    /// Removes a node; values it produced lose their producer.
    pub fn remove_node(&mut self, n: NodeId) -> Option<Node> {
        let node = self.nodes.remove_node(n)?;
        for o in node.outputs.iter().flatten() {
            if self.value(*o).producer == Some(n) {
                self.value_mut(*o).producer = None;
            }
        }
        Some(node)
    }

    /// Points every reader of `old` (nodes and graph outputs) at `new`.
    pub fn replace_uses(&mut self, old: ValueId, new: ValueId) {
        let readers: Vec<NodeId> = self.consumers(old);
        for n in readers {
            for slot in self.nodes[n].inputs.iter_mut() {
                if *slot == Some(old) {
                    *slot = Some(new);
                }
            }
            let stale: Vec<_> = self
                .nodes
                .edges_directed(n, Direction::Incoming)
                .filter(|e| *e.weight() == old)
                .map(|e| e.id())
                .collect();
            for e in stale {
                self.nodes.remove_edge(e);
            }
            if let Some(p) = self.value(new).producer {
                self.nodes.add_edge(p, n, new);
            }
        }
        for o in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Nodes that read `v`.
    pub fn consumers(&self, v: ValueId) -> Vec<NodeId> {
        self.nodes.node_indices().filter(|&n| self.nodes[n].inputs.contains(&Some(v))).collect()
    }

    /// Nodes in an order where every producer comes before its consumers. On a cycle,
    /// the error names a node on it.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        petgraph::algo::toposort(&self.nodes, None).map_err(|c| c.node_id())
    }

    /// How many times each value is read by nodes or is a graph output.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0usize; self.values.len()];
        for n in self.nodes.node_indices() {
            for v in self.nodes[n].inputs.iter().flatten() {
                uses[v.0 as usize] += 1;
            }
        }
        for o in &self.outputs {
            uses[o.0 as usize] += 1;
        }
        uses
    }

    /// Histogram of ONNX op types over the nodes.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for n in self.nodes.node_weights() {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}:{}", n.domain, n.op_type)
            };
            *h.entry(key).or_insert(0) += 1;
        }
        h
    }

    /// Constants that nodes read or the graph outputs, each counted once: the weights.
    pub fn used_constants(&self) -> Vec<ValueId> {
        let uses = self.use_counts();
        (0..self.values.len())
            .map(|i| ValueId(i as u32))
            .filter(|v| uses[v.0 as usize] > 0 && self.value(*v).constant.is_some())
            .collect()
    }
}
