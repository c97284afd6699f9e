//! Removes nodes that pass a value through unchanged (Identity, a Reshape to the same
//! shape, ...), as each op's `passthrough` says.

use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Semantics;

pub fn simplify(g: &mut Graph) -> Result<()> {
    let Ok(order) = g.topo_order() else { return Ok(()) };
    for n in order {
        let node = g.node(n);
        let types: Vec<_> = node.inputs.iter().map(|i| i.and_then(|v| g.value(v).ty.clone())).collect();
        let Some(k) = node.op.passthrough(&types) else { continue };
        let (Some(Some(input)), Some(Some(out))) = (node.inputs.get(k).copied(), node.outputs.first().copied()) else {
            continue;
        };
        // A graph output keeps its own value; the other outputs must be unused.
        if g.outputs.contains(&out) {
            continue;
        }
        let uses = g.use_counts();
        if node.outputs.iter().skip(1).flatten().any(|o| uses[o.0 as usize] > 0) {
            continue;
        }
        g.replace_uses(out, input);
        g.remove_node(n);
    }
    Ok(())
}
