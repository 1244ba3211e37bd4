//! cellm's intermediate representation: a petgraph of ops over typed values
//! with symbolic dims. Importers build it, passes rewrite it, backends run it.

pub mod dot;
pub mod dtype;
pub mod fsutil;
pub mod graph;
pub mod hugemem;
pub mod npy;
pub mod ops;
pub mod shape;
pub mod tensor;

pub use dtype::DType;
pub use graph::{Graph, Node, ValueId, ValueInfo};
pub use ops::{Fact, Op};
pub use shape::{Dim, SymShape};
pub use tensor::{Element, Layout, Tensor};
