//! Frontends: model formats → the graph IR. ONNX is the one there is.

pub mod onnx;
