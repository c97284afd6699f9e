//! The weight blob (`NAME.weights`): a fixed header, then the tensors, each at a
//! 16-byte-aligned offset the generated code knows at compile time.
//!
//! ```text
//! offset size field
//!      0    8 magic        "EDGECWB\0"
//!      8    4 version      BLOB_VERSION, little-endian u32
//!     12    4 header_size  BLOB_HEADER_SIZE (u32)
//!     16    8 model_hash   identifies the model and its compilation (u64)
//!     24    8 total_size   bytes of the whole blob, header included (u64)
//!     32    .. tensors, 16-byte aligned, little-endian, row-major
//!  T-16    8 end magic    "EDGECEND" (T = total_size)
//!  T-8     8 model_hash   again
//! ```
//! The code checks magic, version, hash and size before reading a tensor, so a wrong
//! blob is an error code, never a wild read. `NAME_run` gets no length, so it cannot
//! see a short file by itself: the trailer, at `NAME_WEIGHTS_SIZE - 16`, is what catches
//! a file read short into a buffer of `NAME_WEIGHTS_SIZE` bytes (the tail is then not
//! the trailer), the usual way firmware loads a blob.

pub const BLOB_MAGIC: [u8; 8] = *b"EDGECWB\0";
pub const BLOB_VERSION: u32 = 2;
pub const BLOB_HEADER_SIZE: usize = 32;
pub const BLOB_ALIGN: usize = 16;
pub const BLOB_END_MAGIC: [u8; 8] = *b"EDGECEND";
pub const BLOB_TRAILER_SIZE: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobHeader {
    pub model_hash: u64,
    pub total_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    TooShort,
    Magic,
    Version(u32),
    HeaderSize(u32),
    /// The recorded size differs from the bytes given (truncated or padded file).
    Size { recorded: u64, actual: u64 },
    /// The trailer is not the end magic and the header's hash.
    Trailer,
}

impl BlobHeader {
    pub fn to_bytes(&self) -> [u8; BLOB_HEADER_SIZE] {
        let mut b = [0u8; BLOB_HEADER_SIZE];
        b[0..8].copy_from_slice(&BLOB_MAGIC);
        b[8..12].copy_from_slice(&BLOB_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(BLOB_HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.model_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.total_size.to_le_bytes());
        b
    }

    /// Parses and checks a whole blob's header against the blob's length.
    pub fn parse(blob: &[u8]) -> Result<BlobHeader, BlobError> {
        if blob.len() < BLOB_HEADER_SIZE {
            return Err(BlobError::TooShort);
        }
        if blob[0..8] != BLOB_MAGIC {
            return Err(BlobError::Magic);
        }
        let u32_at = |o: usize| u32::from_le_bytes([blob[o], blob[o + 1], blob[o + 2], blob[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&blob[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let version = u32_at(8);
        if version != BLOB_VERSION {
            return Err(BlobError::Version(version));
        }
        let header_size = u32_at(12);
        if header_size as usize != BLOB_HEADER_SIZE {
            return Err(BlobError::HeaderSize(header_size));
        }
        let header = BlobHeader { model_hash: u64_at(16), total_size: u64_at(24) };
        if header.total_size != blob.len() as u64 {
            return Err(BlobError::Size { recorded: header.total_size, actual: blob.len() as u64 });
        }
        if blob.len() < BLOB_HEADER_SIZE + BLOB_TRAILER_SIZE || blob[blob.len() - BLOB_TRAILER_SIZE..] != header.trailer() {
            return Err(BlobError::Trailer);
        }
        Ok(header)
    }

    /// The last [`BLOB_TRAILER_SIZE`] bytes of the blob.
    pub fn trailer(&self) -> [u8; BLOB_TRAILER_SIZE] {
        let mut t = [0u8; BLOB_TRAILER_SIZE];
        t[..8].copy_from_slice(&BLOB_END_MAGIC);
        t[8..].copy_from_slice(&self.model_hash.to_le_bytes());
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let h = BlobHeader { model_hash: 0x1234_5678_9abc_def0, total_size: 48 };
        let mut blob = [0u8; 48];
        blob[..BLOB_HEADER_SIZE].copy_from_slice(&h.to_bytes());
        assert_eq!(BlobHeader::parse(&blob), Err(BlobError::Trailer));
        blob[48 - BLOB_TRAILER_SIZE..].copy_from_slice(&h.trailer());
        assert_eq!(BlobHeader::parse(&blob), Ok(h));
        assert_eq!(BlobHeader::parse(&blob[..40]), Err(BlobError::Size { recorded: 48, actual: 40 }));
        assert_eq!(BlobHeader::parse(&blob[..10]), Err(BlobError::TooShort));
        let mut bad = blob;
        bad[0] = b'X';
        assert_eq!(BlobHeader::parse(&bad), Err(BlobError::Magic));
        let mut bad = blob;
        bad[8] = 9;
        assert_eq!(BlobHeader::parse(&bad), Err(BlobError::Version(9)));
    }
}
