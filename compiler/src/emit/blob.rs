//! The weight blob (`NAME.weights`, format in `runtime/src/blob.rs`) and the model hash
//! its header carries.

use edgec_runtime::{BlobHeader, BLOB_HEADER_SIZE, BLOB_TRAILER_SIZE};
use sha2::{Digest, Sha256};

use super::bytes::to_le_bytes;
use crate::back::BackendError;
use crate::kir::{BufKind, Program};
use crate::plan::layout::{Layout, Place};

/// The blob: header, then every placed weight's bytes at its layout offset (zero
/// padding between), `layout.weights_size` bytes in all.
pub fn build(program: &Program, layout: &Layout, model_hash: u64) -> Result<Vec<u8>, BackendError> {
    let mut blob = payload(program, layout)?;
    seal(&mut blob, model_hash);
    Ok(blob)
}

/// Writes the header and trailer into a payload (zeroed header, room for the trailer).
pub fn seal(blob: &mut [u8], model_hash: u64) {
    let header = BlobHeader { model_hash, total_size: blob.len() as u64 };
    blob[..BLOB_HEADER_SIZE].copy_from_slice(&header.to_bytes());
    let end = blob.len() - BLOB_TRAILER_SIZE;
    blob[end..].copy_from_slice(&header.trailer());
}

/// The model hash from the compilation's salt, the printed KIR programs and the payload.
pub fn hash_of<'p>(salt: &str, programs: impl Iterator<Item = &'p Program>, payload: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    for p in programs {
        h.update(p.to_string().as_bytes());
        h.update([0]);
    }
    h.update(payload);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

/// The blob with a zeroed header.
fn payload(program: &Program, layout: &Layout) -> Result<Vec<u8>, BackendError> {
    let mut blob = vec![0u8; layout.weights_size.max(BLOB_HEADER_SIZE + BLOB_TRAILER_SIZE)];
    for (i, b) in program.buffers.iter().enumerate() {
        let (BufKind::Weight(t), Place::Weight(off)) = (&b.kind, layout.places[i]) else { continue };
        let bytes = to_le_bytes(t).ok_or_else(|| BackendError::Unsupported {
            backend: "weights",
            what: format!("weight '{}' of type {}", b.name, b.dtype),
        })?;
        let end = off + bytes.len();
        if end > blob.len() {
            return Err(BackendError::Failed { backend: "weights", what: format!("weight '{}' past the blob's end", b.name) });
        }
        blob[off..end].copy_from_slice(&bytes);
    }
    Ok(blob)
}

/// Identifies a compilation: the first 8 bytes (little-endian) of SHA-256 over the
/// printed KIR program, the weight payload and what else changes the generated code
/// (`salt`: name, target, flags). Deterministic, so two compiles are byte-identical.
pub fn model_hash(program: &Program, layout: &Layout, salt: &str) -> Result<u64, BackendError> {
    Ok(hash_of(salt, std::iter::once(program), &payload(program, layout)?))
}
