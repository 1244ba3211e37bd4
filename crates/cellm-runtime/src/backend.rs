//! Where graphs run. The CPU interpreter today; the GPU backend plugs in here.

use anyhow::Result;
use cellm_ir::{Graph, Tensor};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
}

/// A graph loaded for one backend, ready to run many times.
pub struct Executable {
    pub graph: Graph,
    pub backend: Backend,
}

impl Executable {
    pub fn new(graph: Graph, backend: Backend) -> Executable {
        Executable { graph, backend }
    }

    pub fn run(&self, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        match self.backend {
            Backend::Cpu => cellm_cpu::run(&self.graph, inputs),
        }
    }

    /// Declared dtype of graph input `name`.
    pub fn input_dtype(&self, name: &str) -> Option<cellm_ir::DType> {
        let v = self.graph.find(name)?;
        self.graph.values[v].fact.as_ref().map(|f| f.dtype)
    }
}
