//! The front half of the compiler as one call: bind shapes, infer and fold, simplify,
//! fuse attention chains, remove dead code, validate.

use crate::error::Result;
use crate::ir::validate::Stage;
use crate::ir::Graph;
use crate::passes::{self, bind::ShapeBindings};

pub use crate::passes::bind::ShapeBindings as Bindings;

/// Runs the graph passes; the result has a static type for every value.
pub fn prepare(mut g: Graph, bindings: &ShapeBindings) -> Result<Graph> {
    passes::run("bind", &mut g, Stage::Loaded, |g| passes::bind::bind(g, bindings))?;
    // Before propagation, which would fold the weights' DequantizeLinear into floats.
    passes::run("qdq_fold", &mut g, Stage::Loaded, passes::qdq_fold::run)?;
    passes::run("propagate", &mut g, Stage::Typed, passes::propagate::propagate)?;
    passes::run("simplify", &mut g, Stage::Typed, passes::simplify::simplify)?;
    passes::run("fuse_attention", &mut g, Stage::Typed, passes::fuse_attention::run)?;
    passes::run("dce", &mut g, Stage::Typed, passes::dce::dce)?;
    Ok(g)
}

/// Compile-time specialisation: makes the named graph inputs constants with the given
/// values. For exports that pass shape-deciding values (axes, target shapes, pads, `k`)
/// as graph inputs: a static compile needs them fixed, as a model's initializers would be.
pub fn specialize_inputs(g: &mut Graph, values: &[(String, crate::ir::Tensor)]) -> crate::error::Result<()> {
    for (name, t) in values {
        let pos = g.inputs.iter().position(|&v| g.value(v).name == *name).ok_or_else(|| {
            crate::Error::Usage(format!("cannot fix input '{name}': the model has no such input"))
        })?;
        let v = g.inputs[pos];
        if let Some(d) = &g.value(v).declared {
            if d.dtype != t.dtype() {
                return Err(crate::Error::Usage(format!("input '{name}' is {}, the value given is {}", d.dtype, t.dtype())));
            }
        }
        g.inputs.remove(pos);
        g.set_constant(v, std::sync::Arc::new(t.clone()));
    }
    Ok(())
}
