//! The Cranelift backend: KIR → Cranelift IR → relocatable ELF object (cranelift-object)
//! for x86_64, aarch64 and riscv64. (Not yet written.)

use super::{BackendError, Input};

/// Compiles the program into an ELF object defining `NAME_run`.
pub fn emit_object(input: &Input) -> Result<Vec<u8>, BackendError> {
    let _ = input;
    Err(BackendError::Unsupported { backend: "cranelift", what: "not implemented yet".into() })
}
