//! The CPU reference interpreter: runs a graph node by node with obviously
//! correct kernels. Other backends are tested against it.

pub mod interpreter;
pub mod ops;

pub use interpreter::{run, Bindings};
