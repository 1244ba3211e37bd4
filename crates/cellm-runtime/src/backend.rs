//! Where graphs run: the CPU reference interpreter or the wgpu backend.

use anyhow::{Context, Result};
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

/// How a graph is prepared before it is loaded.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Run the cellm-opt passes (folding, fusions) first.
    pub optimize: bool,
    /// Plans folder: load the optimised graphs from a cached plan there, or
    /// compile and store one (see [`crate::plan`]). `None`: optimise in memory.
    pub plan_cache: Option<std::path::PathBuf>,
    pub plan_options: crate::plan::PlanOptions,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            optimize: true,
            plan_cache: None,
            plan_options: Default::default(),
        }
    }
}

/// The passes whose results `backend` can run.
pub fn opt_options(backend: &Backend) -> cellm_opt::OptOptions {
    match backend {
        Backend::Cpu => cellm_opt::OptOptions::default(),
        Backend::Gpu(_) => cellm_opt::OptOptions::gpu(),
    }
}

/// Optimises `graph` in place for `backend`.
pub fn optimize_for(graph: &mut Graph, backend: &Backend) -> Result<cellm_opt::PipelineReport> {
    let name = graph.name.clone();
    cellm_opt::optimize_with(graph, &opt_options(backend))
        .with_context(|| format!("optimising graph '{name}'"))
}

impl Executable {
    /// Optimises `graph` (the default [`ExecOptions`]) and loads it.
    pub fn new(graph: Graph, backend: &Backend) -> Result<Executable> {
        Executable::with_options(graph, backend, &ExecOptions::default())
    }

    pub fn with_options(
        mut graph: Graph,
        backend: &Backend,
        opts: &ExecOptions,
    ) -> Result<Executable> {
        if opts.optimize {
            optimize_for(&mut graph, backend)?;
        }
        Executable::prepared(graph, backend)
    }

    /// Loads `graph` as it is (already optimised, e.g. from a plan).
    pub fn prepared(graph: Graph, backend: &Backend) -> Result<Executable> {
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
