//! The IR validator: structural invariants every pass must keep. Passes run it after
//! themselves in debug builds (`passes::run`), so a broken rewrite is caught where it
//! happens rather than as a wrong number three passes later.

use std::collections::HashSet;

use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use super::graph::{Graph, ValueId};

/// How far along the pipeline the graph is: later stages promise more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Straight from the frontend.
    Loaded,
    /// After shape inference: every value read or written has a static type.
    Typed,
}

pub fn validate(g: &Graph, stage: Stage) -> Result<(), String> {
    let nvals = g.values.len();
    let check_id = |v: ValueId, what: &str| {
        if (v.0 as usize) < nvals {
            Ok(())
        } else {
            Err(format!("{what} refers to value #{} of {nvals}", v.0))
        }
    };
    let inputs: HashSet<ValueId> = g.inputs.iter().copied().collect();
    for n in g.nodes.node_indices() {
        let node = &g.nodes[n];
        for &o in node.outputs.iter().flatten() {
            check_id(o, &node.name)?;
            if g.value(o).producer != Some(n) {
                return Err(format!("node '{}' writes '{}', whose producer is another node", node.name, g.value(o).name));
            }
        }
        for &i in node.inputs.iter().flatten() {
            check_id(i, &node.name)?;
            let v = g.value(i);
            match v.producer {
                Some(p) => {
                    if !g.nodes.contains_node(p) {
                        return Err(format!("node '{}' reads '{}', produced by a removed node", node.name, v.name));
                    }
                    if !g.nodes.edges_directed(n, Direction::Incoming).any(|e| e.source() == p && *e.weight() == i) {
                        return Err(format!("edge for '{}' into node '{}' is missing", v.name, node.name));
                    }
                }
                None if v.constant.is_some() || inputs.contains(&i) => {}
                None => return Err(format!("node '{}' reads '{}', which nothing defines", node.name, v.name)),
            }
            if stage >= Stage::Typed && v.ty.is_none() {
                return Err(format!("node '{}' reads '{}', which has no type after inference", node.name, v.name));
            }
        }
    }
    for e in (&g.nodes).edge_references() {
        let v = *e.weight();
        if !g.nodes[e.target()].inputs.contains(&Some(v)) || g.value(v).producer != Some(e.source()) {
            return Err(format!("stale edge for value '{}'", g.value(v).name));
        }
    }
    for &o in &g.outputs {
        check_id(o, "a graph output")?;
        let v = g.value(o);
        if v.producer.is_none() && v.constant.is_none() && !inputs.contains(&o) {
            return Err(format!("graph output '{}' is not defined", v.name));
        }
        if stage >= Stage::Typed && v.ty.is_none() {
            return Err(format!("graph output '{}' has no type after inference", v.name));
        }
    }
    if let Err(n) = g.topo_order() {
        return Err(format!("cycle through node '{}'", g.nodes[n].name));
    }
    Ok(())
}
