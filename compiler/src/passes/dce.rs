//! Dead-code elimination: nodes none of whose outputs is read or is a graph output.

use crate::error::Result;
use crate::ir::Graph;

pub fn dce(g: &mut Graph) -> Result<()> {
    let Ok(order) = g.topo_order() else { return Ok(()) };
    let mut uses = g.use_counts();
    for n in order.into_iter().rev() {
        let live = g.node(n).outputs.iter().flatten().any(|o| uses[o.0 as usize] > 0);
        if !live {
            if let Some(node) = g.remove_node(n) {
                for i in node.inputs.iter().flatten() {
                    uses[i.0 as usize] -= 1;
                }
            }
        }
    }
    Ok(())
}
