//! The tiny `no_std` runtime shared by code that edgec generates and the programs that
//! call it: error codes, the weight blob format, and [`Model`], a safe wrapper that
//! checks a compiled model's weights and buffers before calling its `NAME_run`. Generated C and objects use the
//! same definitions through `include/edgec_runtime.h`.
#![cfg_attr(not(test), no_std)]

pub mod blob;
pub mod model;
pub mod status;

pub use blob::{BlobError, BlobHeader, BLOB_ALIGN, BLOB_END_MAGIC, BLOB_HEADER_SIZE, BLOB_MAGIC, BLOB_TRAILER_SIZE, BLOB_VERSION};
pub use model::{Arena, ElemType, Element, Error, Input, Model, ModelSpec, Output, RunFn, TensorSpec};
pub use status::Status;
