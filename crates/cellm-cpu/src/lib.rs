//! The CPU reference interpreter: runs a graph node by node with obviously
//! correct kernels. Other backends are tested against it.

pub mod attention_rows;
pub mod interpreter;
pub mod kv_cache;
pub mod ops;
pub mod panels;
pub mod par;
pub mod vmath;

pub use interpreter::{run, run_with_cache, Bindings};
pub use kv_cache::KvCache;
