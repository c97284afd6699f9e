//! The graph IR: typed ops on a petgraph graph, element types, static shapes and the
//! tensors that constants and the reference evaluator hold.

pub mod dtype;
pub mod graph;
pub mod packed;
pub mod tensor;
pub mod validate;

pub use dtype::{DType, DimSpec, TypeInfo};
pub use graph::{Declared, Graph, Node, NodeId, Value, ValueId};
pub use tensor::{Element, Tensor};
