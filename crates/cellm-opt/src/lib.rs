//! Graph optimisation passes for cellm.
//!
//! Every pass is a rewrite rule (a guard that matches at one node and a patch
//! that rewrites the match) or a whole-graph sweep; a [`Pipeline`] runs them to a
//! fixpoint. Fusions only produce ops that already exist in the IR, so every
//! backend runs an optimised graph unchanged.

pub mod pass;
pub use pass::RulePass;
pub mod passes;
pub mod pattern;
pub mod stats;

pub use pass::{Pass, Pipeline, PipelineReport, Rule};

use anyhow::Result;
use cellm_ir::{Dim, Graph};
use std::collections::HashMap;

/// Runs the default pipeline on `graph` in place.
pub fn optimize(graph: &mut Graph) -> Result<PipelineReport> {
    Pipeline::default_passes().run(graph)
}

/// Which passes run. A backend that lacks a kernel form some pass produces
/// (e.g. an op attribute combination) leaves that pass out.
#[derive(Clone, Debug, Default)]
pub struct OptOptions {
    /// Pass names ([`Pass::name`]) left out of the default pipeline.
    pub skip: Vec<&'static str>,
}

impl OptOptions {
    /// The pass set for the wgpu backend. Every pass today produces forms its
    /// kernels support (MultiHeadAttention with [B, H, L, D] key/value
    /// included), so nothing is skipped; a pass whose output the GPU cannot
    /// run yet is listed here until it can.
    pub fn gpu() -> OptOptions {
        OptOptions::default()
    }
}

/// Runs the default pipeline without `opts.skip` on `graph` in place.
pub fn optimize_with(graph: &mut Graph, opts: &OptOptions) -> Result<PipelineReport> {
    Pipeline::default_passes().without(&opts.skip).run(graph)
}

/// Binds symbolic dims of the graph inputs (e.g. `batch_size` = 1) and
/// optimises again, so that shape math over those dims folds away. The result
/// only accepts inputs with those dims.
pub fn specialize(graph: &mut Graph, bindings: &HashMap<String, usize>) -> Result<PipelineReport> {
    for &v in &graph.inputs.clone() {
        if let Some(shape) = graph.values[v].fact.as_mut().and_then(|f| f.shape.as_mut()) {
            for d in shape.iter_mut() {
                if let Some(n) = d.resolve(bindings) {
                    *d = Dim::Known(n);
                }
            }
        }
    }
    graph.infer_facts()?;
    optimize(graph)
}
