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

/// The blob's size in bytes for `layout` (what [`build`] returns).
pub fn size(layout: &Layout) -> usize {
    layout.weights_size.max(BLOB_HEADER_SIZE + BLOB_TRAILER_SIZE)
}

/// The blob with a zeroed header.
fn payload(program: &Program, layout: &Layout) -> Result<Vec<u8>, BackendError> {
    let mut blob = vec![0u8; size(layout)];
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
/// The payload is hashed weight by weight (zero gaps fed in between), so hashing a
/// 400 MB model does not materialise a second 400 MB blob.
pub fn model_hash(program: &Program, layout: &Layout, salt: &str) -> Result<u64, BackendError> {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(program.to_string().as_bytes());
    h.update([0]);
    hash_payload(&mut h, program, layout)?;
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    Ok(u64::from_le_bytes(first))
}

/// Feeds exactly the bytes of [`payload`] to `h`. Weights that overlap (none today)
/// fall back to building the payload.
fn hash_payload(h: &mut Sha256, program: &Program, layout: &Layout) -> Result<(), BackendError> {
    let total = size(layout);
    let mut placed: Vec<(usize, usize)> = program
        .buffers
        .iter()
        .enumerate()
        .filter_map(|(i, b)| match (&b.kind, layout.places[i]) {
            (BufKind::Weight(_), Place::Weight(off)) => Some((off, i)),
            _ => None,
        })
        .collect();
    placed.sort();
    let zeros = [0u8; 4096];
    let feed_zeros = |h: &mut Sha256, mut n: usize| {
        while n > 0 {
            let k = n.min(zeros.len());
            h.update(&zeros[..k]);
            n -= k;
        }
    };
    let mut at = 0;
    for (off, i) in placed {
        let b = &program.buffers[i];
        let BufKind::Weight(t) = &b.kind else { continue };
        let bytes = to_le_bytes(t).ok_or_else(|| BackendError::Unsupported {
            backend: "weights",
            what: format!("weight '{}' of type {}", b.name, b.dtype),
        })?;
        if off < at || off + bytes.len() > total {
            h.update(payload(program, layout)?);
            return Ok(());
        }
        feed_zeros(h, off - at);
        h.update(&bytes);
        at = off + bytes.len();
    }
    feed_zeros(h, total - at);
    Ok(())
}

/// [`build`] for a program that is not needed afterwards: each weight's tensor is
/// released as soon as its bytes are in the blob, so (with the graph dropped, the
/// program holding the only reference) the weights exist about once, not twice, at the
/// peak of a large compile. The program keeps its buffers, with empty weights.
pub fn build_consuming(program: &mut Program, layout: &Layout, model_hash: u64) -> Result<Vec<u8>, BackendError> {
    let mut blob = vec![0u8; size(layout)];
    for (i, b) in program.buffers.iter_mut().enumerate() {
        let Place::Weight(off) = layout.places[i] else { continue };
        let BufKind::Weight(t) = &mut b.kind else { continue };
        // An empty tensor of the same storage type stands in for the released one.
        let empty = std::sync::Arc::new(crate::ir::Tensor::zeros(t.dtype(), &[0]));
        let t = std::mem::replace(t, empty);
        let bytes = to_le_bytes(&t).ok_or_else(|| BackendError::Unsupported {
            backend: "weights",
            what: format!("weight '{}' of type {}", b.name, b.dtype),
        })?;
        drop(t);
        let end = off + bytes.len();
        if end > blob.len() {
            return Err(BackendError::Failed { backend: "weights", what: format!("weight '{}' past the blob's end", b.name) });
        }
        blob[off..end].copy_from_slice(&bytes);
    }
    let header = BlobHeader { model_hash, total_size: blob.len() as u64 };
    blob[..BLOB_HEADER_SIZE].copy_from_slice(&header.to_bytes());
    let end = blob.len() - BLOB_TRAILER_SIZE;
    blob[end..].copy_from_slice(&header.trailer());
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed hash equals the hash of the materialised payload, and the consuming
    /// build gives the same blob as [`build`].
    #[test]
    fn streamed_hash_and_consuming_build_match() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models/gpt2_decode_kv");
        let model = crate::front::onnx::load(&dir.join("model.onnx")).unwrap();
        let mut b = crate::pipeline::Bindings::default();
        for (k, v) in [("batch", 1), ("past_sequence_length", 4), ("total_sequence_length", 5)] {
            b.dims.insert(k.to_string(), v);
        }
        let g = crate::pipeline::prepare(model.graph, &b).unwrap();
        let (mut program, layout) = crate::emit::lower(&g).unwrap();
        let mut h = Sha256::new();
        h.update(payload(&program, &layout).unwrap());
        let mut s = Sha256::new();
        hash_payload(&mut s, &program, &layout).unwrap();
        assert_eq!(h.finalize(), s.finalize());
        let want = build(&program, &layout, 42).unwrap();
        drop(g);
        assert_eq!(build_consuming(&mut program, &layout, 42).unwrap(), want);
    }
}
