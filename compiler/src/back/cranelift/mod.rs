//! The Cranelift backend: KIR → Cranelift IR → relocatable ELF object (cranelift-object)
//! for x86_64, aarch64 and riscv64.
//!
//! The object defines one exported function per model, `NAME_run` ([`entry`]), which
//! checks its arguments and the weight blob's header and then calls one local function
//! per KIR kernel ([`kernel`]) in order, stopping at the first nonzero code. Kernels are
//! separate functions so each is register-allocated on its own and a big model does not
//! become one huge function. With embedded weights the blob is a read-only data object
//! `NAME_weights` (16-byte aligned) that `NAME_run` uses instead of its argument.
//!
//! Semantics are exactly `kir::interp`'s; the pieces Cranelift lacks or would turn into
//! libcalls (f16/bf16 conversion, fmod, guarded integer division, rounding without
//! SSE4.1) are built from integer and float primitives in [`storage`] and [`float`].
//! Output is reproducible: the same input gives a byte-identical object.

mod block;
mod entry;
mod expr;
mod float;
mod isa;
mod kernel;
mod storage;
mod vector;

#[cfg(test)]
mod tests;

use cranelift_codegen::ir::{types, AbiParam, Signature};
use cranelift_codegen::isa::CallConv;
use cranelift_module::{DataDescription, DataId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

use super::{BackendError, Input};
use crate::kir::{GemmTiles, Program, Ty};

use isa::Caps;

const BACKEND: &str = "cranelift";

pub(crate) fn failed(what: impl std::fmt::Display) -> BackendError {
    BackendError::Failed { backend: BACKEND, what: what.to_string() }
}

pub(crate) fn unsupported(what: impl Into<String>) -> BackendError {
    BackendError::Unsupported { backend: BACKEND, what: what.into() }
}

/// The GEMM tile layout to lower for `target`: [`GemmTiles::Panels`] where the vectoriser
/// keeps the tiles in f32x4 registers (128-bit SIMD with fused multiply-add), the
/// scalar-friendly default elsewhere (riscv64, an x86_64 host without FMA).
pub fn gemm_tiles(target: &crate::targets::Target) -> GemmTiles {
    match isa::for_target(target) {
        Ok((_, caps)) if caps.simd128 && caps.fma => GemmTiles::Panels { depth: if caps.lane_fma { 4 } else { 2 } },
        _ => GemmTiles::default(),
    }
}

/// Compiles the program into an ELF object defining `NAME_run` (and `NAME_weights` with
/// embedded weights).
pub fn emit_object(input: &Input) -> Result<Vec<u8>, BackendError> {
    emit_objects(std::slice::from_ref(input))
}

/// Compiles several programs into one ELF object, each defining its own `NAME_run` under
/// its own name (a shape family: one specialisation per dimension value, see
/// `emit::family`). All must be for the same target.
pub fn emit_objects(inputs: &[Input]) -> Result<Vec<u8>, BackendError> {
    let Some(first) = inputs.first() else { return Err(failed("no program to compile")) };
    for input in inputs {
        let opts = &input.options;
        if !is_c_identifier(opts.name) {
            return Err(failed(format!("'{}' is not a C identifier", opts.name)));
        }
        if opts.target.name != first.options.target.name {
            return Err(failed("one object holds code for one target"));
        }
        check_program(input.program)?;
        if input.layout.places.len() != input.program.buffers.len() {
            return Err(failed("layout and program disagree on the number of buffers"));
        }
    }
    let (isa, caps) = isa::for_target(first.options.target)?;
    emit_with(inputs, isa, caps)
}

/// [`emit_objects`] for a given ISA and capabilities (tests force the emulated paths).
fn emit_with(inputs: &[Input], isa: cranelift_codegen::isa::OwnedTargetIsa, caps: Caps) -> Result<Vec<u8>, BackendError> {
    let call_conv = isa.default_call_conv();
    let object_name = inputs[0].options.name.as_bytes().to_vec();
    let builder = ObjectBuilder::new(isa, object_name, cranelift_module::default_libcall_names()).map_err(failed)?;
    let mut module = ObjectModule::new(builder);
    let sig = run_signature(call_conv);
    for input in inputs {
        let opts = &input.options;
        let weights = match opts.embedded_weights {
            Some(blob) => Some(define_weights(&mut module, opts.name, blob)?),
            None => None,
        };
        let mut kernels = Vec::with_capacity(input.program.kernels.len());
        for (i, k) in input.program.kernels.iter().enumerate() {
            let id = module.declare_function(&format!("{}_k{i}", opts.name), Linkage::Local, &sig).map_err(failed)?;
            kernel::define(&mut module, id, &sig, input, k, caps).map_err(|e| in_kernel(e, i, &k.name))?;
            kernels.push(id);
        }
        entry::define(&mut module, &sig, input, weights, &kernels)?;
    }
    module.finish().emit().map_err(failed)
}

/// `int (const void *weights, void *arena, const void *const inputs[], void *const outputs[])`,
/// shared by `NAME_run` and the kernels.
fn run_signature(call_conv: CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.extend([AbiParam::new(types::I64); 4]);
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

fn define_weights(module: &mut ObjectModule, name: &str, blob: &[u8]) -> Result<DataId, BackendError> {
    let id = module.declare_data(&format!("{name}_weights"), Linkage::Export, false, false).map_err(failed)?;
    let mut desc = DataDescription::new();
    desc.define(blob.to_vec().into_boxed_slice());
    desc.set_align(16);
    module.define_data(id, &desc).map_err(failed)?;
    Ok(id)
}

fn in_kernel(e: BackendError, i: usize, name: &str) -> BackendError {
    match e {
        BackendError::Unsupported { backend, what } => BackendError::Unsupported { backend, what: format!("kernel {i} ({name}): {what}") },
        BackendError::Failed { backend, what } => BackendError::Failed { backend, what: format!("kernel {i} ({name}): {what}") },
    }
}

/// Rejects buffer types code generation cannot handle (E8M0, and packed types
/// `kir::packed::expand` has not turned into bytes) before any code is built.
fn check_program(p: &Program) -> Result<(), BackendError> {
    for b in &p.buffers {
        if Ty::of_storage(b.dtype).is_none() || crate::kir::packed::is_expanded(b.dtype) {
            return Err(unsupported(format!("buffer '{}' of type {}", b.name, b.dtype)));
        }
    }
    Ok(())
}

fn is_c_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
