//! Backends: a KIR [`Program`] with its [`Layout`] → code for a target.
//!
//! - [`cranelift`]: native ELF objects for x86_64 (host), aarch64 and riscv64;
//! - [`c`]: portable C99 for Cortex-M and RV32 (and any host, for tests).
//!
//! Both generate one function with the contract's signature
//! `int NAME_run(const void *weights, void *arena, const void *const inputs[], void *const outputs[])`
//! that checks the weight blob's header, then runs the kernels in order. Every buffer's
//! address is `inputs[k]`, `outputs[k]`, `weights + offset` or `arena + offset` from the
//! layout. Transcendental KIR ops must have been expanded (`kir::math::expand`) first.

pub mod c;
pub mod cranelift;

use crate::kir::Program;
use crate::plan::layout::Layout;
use crate::targets::Target;

/// What a backend needs besides the program and layout.
#[derive(Clone, Debug)]
pub struct EmitOptions<'a> {
    /// The symbol prefix (`NAME_run`, ...), a C identifier.
    pub name: &'a str,
    pub target: &'static Target,
    /// Identifies the model and compilation; the blob header must carry the same value.
    pub model_hash: u64,
    /// With `--embed-weights`: the whole blob to place in read-only data; `NAME_run` then
    /// ignores its `weights` argument.
    pub embedded_weights: Option<&'a [u8]>,
}

/// A backend's failure: an op or type it cannot generate, or an internal error.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unsupported by the {backend} backend: {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("{backend} backend: {what}")]
    Failed { backend: &'static str, what: String },
}

/// Shared by both backends: the program and layout they compile.
pub struct Input<'a> {
    pub program: &'a Program,
    pub layout: &'a Layout,
    pub options: EmitOptions<'a>,
}
