//! Where graphs run: the CPU reference interpreter or the wgpu backend.

use anyhow::Result;
use cellm_gpu::{GpuContext, GpuSession};
use cellm_ir::{Graph, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub enum Backend {
    Cpu,
    /// One device shared by every graph of a model.
    Gpu(Arc<GpuContext>),
}

impl Backend {
    pub fn name(&self) -> String {
        match self {
            Backend::Cpu => "cpu".into(),
            Backend::Gpu(ctx) => format!("gpu ({})", ctx.adapter.name),
        }
    }
}

enum Runner {
    Cpu(Graph),
    Gpu(GpuSession),
}

/// A graph loaded for one backend (weights uploaded once), ready to run many times.
pub struct Executable {
    runner: Runner,
}

impl Executable {
    pub fn new(graph: Graph, backend: &Backend) -> Result<Executable> {
        let runner = match backend {
            Backend::Cpu => Runner::Cpu(graph),
            Backend::Gpu(ctx) => Runner::Gpu(GpuSession::with_context(
                ctx.clone(),
                graph,
                Default::default(),
            )?),
        };
        Ok(Executable { runner })
    }

    pub fn graph(&self) -> &Graph {
        match &self.runner {
            Runner::Cpu(g) => g,
            Runner::Gpu(s) => s.graph(),
        }
    }

    pub fn run(&self, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
        match &self.runner {
            Runner::Cpu(g) => cellm_cpu::run(g, inputs),
            Runner::Gpu(s) => s.run(inputs),
        }
    }

    /// Declared dtype of graph input `name`.
    pub fn input_dtype(&self, name: &str) -> Option<cellm_ir::DType> {
        let g = self.graph();
        let v = g.find(name)?;
        g.values[v].fact.as_ref().map(|f| f.dtype)
    }
}
