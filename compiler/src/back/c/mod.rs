//! The C99 backend: KIR → one freestanding C source defining `NAME_run`. (Not yet written.)

use super::{BackendError, Input};

/// Generates the C source.
pub fn emit_source(input: &Input) -> Result<String, BackendError> {
    let _ = input;
    Err(BackendError::Unsupported { backend: "c", what: "not implemented yet".into() })
}
