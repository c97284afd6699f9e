//! Graph passes. Each takes the graph by `&mut` and leaves it valid; [`run`] checks that
//! with the validator after every pass in debug builds.

pub mod bind;
pub mod calibration;
pub mod dce;
pub mod fuse_attention;
pub mod gptq;
pub mod propagate;
pub mod qdq_fold;
pub mod quantize_int8;
pub mod quantize_weights;
pub mod simplify;

use crate::error::{Error, Result};
use crate::ir::{validate::{validate, Stage}, Graph};

/// Runs one pass, then (in debug builds) the validator.
pub fn run(name: &str, g: &mut Graph, stage: Stage, pass: impl FnOnce(&mut Graph) -> Result<()>) -> Result<()> {
    pass(g)?;
    if cfg!(debug_assertions) {
        validate(g, stage).map_err(|e| Error::Internal(format!("after pass '{name}': {e}")))?;
    }
    Ok(())
}
