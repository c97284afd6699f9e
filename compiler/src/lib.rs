//! edgec: an ahead-of-time compiler for generative ONNX models on edge devices.
//!
//! The pipeline: [`front::onnx`] reads a model into the [`ir`] graph; [`passes`] fix
//! shapes, infer types, fold constants and simplify; [`eval`] is the reference
//! evaluator (the constant folder's engine and the test oracle). Op semantics live in
//! [`ops`], one module per family.

pub mod accuracy;
pub mod back;
pub mod build_api;
pub mod emit;
pub mod error;
pub mod eval;
pub mod front;
pub mod ir;
pub mod kir;
pub mod lower;
pub mod npy;
pub mod ops;
pub mod passes;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod targets;
pub mod testdata;

pub use build_api::{Build, BuildError, Built};
pub use error::{Error, OpError, Result};
