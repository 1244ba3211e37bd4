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

/// KV caches of a decoder on its backend (see [`crate::decoder::KvDecoder`]).
pub enum KvState {
    Cpu(cellm_cpu::KvCache),
    Gpu(cellm_gpu::GpuKvCache),
}

impl KvState {
    pub fn reset(&mut self) {
        match self {
            KvState::Cpu(c) => c.reset(),
            KvState::Gpu(c) => c.reset(),
        }
    }
}

/// Embedding rows for a decoder step: on the host, or already on the GPU
/// (made by another graph on the same device, never read back).
pub enum EmbedRows {
    Host(Vec<f32>),
    Device(cellm_gpu::DevTensor),
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

/// The decoder-runtime passes (see cellm-opt): `kv_cache` turns the
/// past/present pairs that match into in-place caches, `last_logits` computes
/// logits for the last position only. Both change the graph's interface the
/// way [`crate::decoder::KvDecoder`] expects. Then `causal_mask` replaces an
/// attention bias built from the (all-ones, see
/// [`crate::decoder::resident_mask_input`]) attention mask by causal attention,
/// and `multi_head_attention_mat_mul` fuses each attention with its output
/// projection.
///
/// With `dtype` "f16" the caches are stored as f16 too (cellm-opt's
/// `f16_kv_cache`): the runtime owns them, so their dtype may change.
pub fn with_kv_cache(graph: &mut Graph, dtype: &str) -> Result<usize> {
    let name = graph.name.clone();
    let n = cellm_opt::passes::kv_cache::apply(graph)
        .with_context(|| format!("KV-cache pass on graph '{name}'"))?;
    cellm_opt::passes::last_logits::apply(graph, "logits")
        .with_context(|| format!("last-logits pass on graph '{name}'"))?;
    // Every past is an in-place cache: KvDecoder feeds this mask all ones
    // and position_ids P..P+S.
    if let Some(m) = crate::decoder::resident_mask_input(graph) {
        let mask = graph.value_name(m).to_string();
        cellm_opt::passes::causal_mask::apply(graph, &mask, Some("position_ids"))
            .with_context(|| format!("causal-mask pass on graph '{name}'"))?;
    }
    if dtype == "f16" {
        cellm_opt::passes::f16_kv_cache::apply(graph)
            .with_context(|| format!("f16 KV-cache pass on graph '{name}'"))?;
    }
    // Last: the passes above match MultiHeadAttention nodes.
    cellm_opt::passes::multi_head_attention_mat_mul::apply(graph)
        .with_context(|| format!("attention-projection fusion on graph '{name}'"))?;
    Ok(n)
}

/// Weight storage per `--dtype`: "f32" keeps the model's dtypes, "f16" stores
/// MatMul weight matrices as f16 (cellm-opt's `f16_weights`).
pub fn apply_dtype(graph: &mut Graph, dtype: &str) -> Result<()> {
    match dtype {
        "f32" => Ok(()),
        "f16" => {
            let name = graph.name.clone();
            cellm_opt::passes::f16_weights::apply(graph)
                .with_context(|| format!("f16 weights for graph '{name}'"))?;
            Ok(())
        }
        other => anyhow::bail!("--dtype {other}: expected f16 or f32"),
    }
}

/// Storage layouts for `backend`'s kernels: on the CPU, decoder weights go
/// to column panels (cellm-opt's `weight_panels`: the decode GEMVs stream
/// them at memory speed). The GPU keeps the model's row-major weights.
pub fn apply_layouts(graph: &mut Graph, backend: &Backend) -> Result<()> {
    if let Backend::Cpu = backend {
        let name = graph.name.clone();
        cellm_opt::passes::weight_panels::apply(graph)
            .with_context(|| format!("weight panels for graph '{name}'"))?;
    }
    Ok(())
}

/// Everything a plan holds for `backend`: the passes, `dtype`'s weight
/// storage, then the backend's layouts.
pub fn compile_for(graph: &mut Graph, backend: &Backend, dtype: &str) -> Result<()> {
    optimize_for(graph, backend)?;
    apply_dtype(graph, dtype)?;
    apply_layouts(graph, backend)
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
            compile_for(&mut graph, backend, &opts.plan_options.dtype)?;
        }
        Executable::prepared(graph, backend)
    }

    /// A KV decoder: optimised (unless `opts.optimize` is off), then the
    /// `kv_cache` pass so past/present become in-place caches, then loaded.
    pub fn decoder(mut graph: Graph, backend: &Backend, opts: &ExecOptions) -> Result<Executable> {
        if opts.optimize {
            compile_for(&mut graph, backend, &opts.plan_options.dtype)?;
            with_kv_cache(&mut graph, &opts.plan_options.dtype)?;
        }
        Executable::prepared(graph, backend)
    }

    /// An already optimised decoder (e.g. from a plan compiled with `dtype`):
    /// the `kv_cache` pass, then loaded.
    pub fn prepared_decoder(
        mut graph: Graph,
        backend: &Backend,
        dtype: &str,
    ) -> Result<Executable> {
        with_kv_cache(&mut graph, dtype)?;
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

    /// Runs the graph for its output `name`: on the GPU it stays on the
    /// device (no readback); on the CPU it is returned as f32 rows.
    pub fn run_for_rows(&self, inputs: &HashMap<String, Tensor>, name: &str) -> Result<EmbedRows> {
        match &self.runner {
            Runner::Cpu(g) => {
                let mut out = cellm_cpu::run(g, inputs)?;
                let t = out
                    .remove(name)
                    .with_context(|| format!("graph returned no '{name}'"))?;
                Ok(EmbedRows::Host(t.to_f32_vec()?))
            }
            Runner::Gpu(s) => {
                let mut out = s.run_on_device(inputs)?;
                let d = out
                    .remove(name)
                    .with_context(|| format!("graph returned no '{name}'"))?;
                Ok(EmbedRows::Device(d))
            }
        }
    }

    /// Binds input `name` of the next [`Executable::run_with_cache`] to a
    /// device tensor from a graph of the same [`Backend`] (callers leave it
    /// out of the inputs). Fails on the CPU.
    pub fn bind_device_input(
        &self,
        cache: &mut KvState,
        name: &str,
        value: cellm_gpu::DevTensor,
    ) -> Result<()> {
        match (&self.runner, cache) {
            (Runner::Gpu(_), KvState::Gpu(c)) => {
                // Every graph of a model shares the Backend's one context,
                // which is where `value` comes from (see `run_for_rows`).
                c.bind_input(name, value);
                Ok(())
            }
            _ => anyhow::bail!("device input '{name}' needs a decoder on the GPU"),
        }
    }

    /// Empty KV caches for the [B, P, X] graph inputs `names` (capacity
    /// `cap_rows` tokens) on this executable's backend.
    pub fn new_kv_cache(&self, names: &[String], cap_rows: usize) -> Result<KvState> {
        match &self.runner {
            Runner::Cpu(g) => {
                let mut c = cellm_cpu::KvCache::new();
                for name in names {
                    let f = g
                        .find(name)
                        .filter(|v| g.inputs.contains(v))
                        .and_then(|v| g.values[v].fact.clone())
                        .with_context(|| format!("'{name}' is not a declared input"))?;
                    let row = match f.shape.as_deref() {
                        Some([_, _, x]) => x.known(),
                        _ => None,
                    }
                    .with_context(|| {
                        format!("KV cache input '{name}' must be [B, P, X] with X fixed")
                    })?;
                    c.add(name, f.dtype, row, cap_rows);
                }
                Ok(KvState::Cpu(c))
            }
            Runner::Gpu(s) => Ok(KvState::Gpu(s.new_kv_cache(names, cap_rows)?)),
        }
    }

    /// [`Executable::run`] with the cache-held inputs bound to `cache`.
    pub fn run_with_cache(
        &self,
        inputs: &HashMap<String, Tensor>,
        cache: &mut KvState,
    ) -> Result<HashMap<String, Tensor>> {
        match (&self.runner, cache) {
            (Runner::Cpu(g), KvState::Cpu(c)) => cellm_cpu::run_with_cache(g, inputs, c),
            (Runner::Gpu(s), KvState::Gpu(c)) => s.run_with_cache(inputs, c),
            _ => anyhow::bail!("KV cache belongs to another backend"),
        }
    }

    /// Binds graph input `name` of the next [`Executable::run_with_cache`]
    /// calls to a device-resident all-ones [1, len] i64 tensor (an attention
    /// mask with no padding), so no step uploads it. Returns false where
    /// nothing is resident (the CPU: its inputs are host memory anyway); then
    /// the caller passes the input as usual.
    pub fn set_resident_ones(&self, cache: &mut KvState, name: &str, len: usize) -> Result<bool> {
        match (&self.runner, cache) {
            (Runner::Gpu(s), KvState::Gpu(c)) => {
                s.set_resident_ones(c, name, len)?;
                Ok(true)
            }
            (Runner::Cpu(_), KvState::Cpu(_)) => Ok(false),
            _ => anyhow::bail!("KV cache belongs to another backend"),
        }
    }

    /// Counters of the last GPU run (None on the CPU).
    pub fn last_gpu_stats(&self) -> Option<cellm_gpu::RunStats> {
        match &self.runner {
            Runner::Gpu(s) => Some(s.last_stats()),
            Runner::Cpu(_) => None,
        }
    }

    /// Declared dtype of graph input `name`.
    pub fn input_dtype(&self, name: &str) -> Option<cellm_ir::DType> {
        let g = self.graph();
        let v = g.find(name)?;
        g.values[v].fact.as_ref().map(|f| f.dtype)
    }
}
