//! Quantization modes as the library offers them (`edgec compile --quantize ...` maps
//! to these; a build script calls [`apply`] between `pipeline::prepare` and
//! `emit::compile`).
//!
//! Weight-only block modes (docs/quantization.md): `Int4` packs MatMul/Gemm weights and
//! Gather tables in llama.cpp's Q4_0 blocks, `Int8Weights` in Q8_0; activations stay
//! float32 and the kernels read the blocks in place.

use crate::error::Result;
use crate::ir::Graph;
use crate::ops::blockquant_format::BlockFormat;
use crate::passes::quantize_weights::{self, Summary};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantizeMode {
    /// Q4_0 weight blocks (4.5 bits per weight).
    Int4,
    /// Q8_0 weight blocks (8.5 bits per weight).
    Int8Weights,
}

impl QuantizeMode {
    /// The flag value (`--quantize NAME`).
    pub fn name(self) -> &'static str {
        match self {
            QuantizeMode::Int4 => "int4",
            QuantizeMode::Int8Weights => "int8-weights",
        }
    }

    pub fn block_format(self) -> BlockFormat {
        match self {
            QuantizeMode::Int4 => BlockFormat::Q4_0,
            QuantizeMode::Int8Weights => BlockFormat::Q8_0,
        }
    }
}

/// Quantizes a prepared graph's weights in place, rounding plainly.
pub fn apply(g: &mut Graph, mode: QuantizeMode) -> Result<Summary> {
    apply_calibrated(g, mode, &[])
}

/// [`apply`] with calibration input sets of `g`: MatMul/Gemm weights are then rounded
/// with GPTQ on the activations these inputs produce (passes/gptq.rs), in the same
/// format.
pub fn apply_calibrated(g: &mut Graph, mode: QuantizeMode, calibration: &[Vec<crate::ir::Tensor>]) -> Result<Summary> {
    let mut summary = None;
    crate::passes::run("quantize_weights", g, crate::ir::validate::Stage::Typed, |g| {
        summary = Some(quantize_weights::quantize_weights(g, mode.block_format(), calibration)?);
        Ok(())
    })?;
    crate::passes::run("dce", g, crate::ir::validate::Stage::Typed, crate::passes::dce::dce)?;
    Ok(summary.unwrap_or_default())
}
