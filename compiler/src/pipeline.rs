//! The front half of the compiler as one call: bind shapes, infer and fold, simplify,
//! remove dead code, validate.

use crate::error::Result;
use crate::ir::validate::Stage;
use crate::ir::Graph;
use crate::passes::{self, bind::ShapeBindings};

pub use crate::passes::bind::ShapeBindings as Bindings;

/// Runs the graph passes; the result has a static type for every value.
pub fn prepare(mut g: Graph, bindings: &ShapeBindings) -> Result<Graph> {
    passes::run("bind", &mut g, Stage::Loaded, |g| passes::bind::bind(g, bindings))?;
    passes::run("propagate", &mut g, Stage::Typed, passes::propagate::propagate)?;
    passes::run("simplify", &mut g, Stage::Typed, passes::simplify::simplify)?;
    passes::run("dce", &mut g, Stage::Typed, passes::dce::dce)?;
    Ok(g)
}
