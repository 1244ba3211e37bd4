//! `cellm-run inspect`: a graph's signature and op histogram.

use anyhow::Result;
use cellm_ir::shape::fmt_shape;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct InspectArgs {
    /// The ONNX model file.
    pub model: PathBuf,
}

pub fn run(a: InspectArgs) -> Result<()> {
    print_io(&a.model)
}

/// Prints a graph's signature and op histogram (also `vlm --dump-io`).
pub fn print_io(model: &std::path::Path) -> Result<()> {
    let g = cellm_onnx::load(model)?;
    let describe = |v: usize| match &g.values[v].fact {
        Some(f) => format!(
            "{} {}",
            f.dtype,
            f.shape
                .as_deref()
                .map(fmt_shape)
                .unwrap_or_else(|| "?".into())
        ),
        None => "?".into(),
    };
    println!("graph: {} ({})", g.name, model.display());
    println!("inputs:");
    for &v in &g.inputs {
        println!("  {}: {}", g.value_name(v), describe(v));
    }
    println!("outputs:");
    for &v in &g.outputs {
        println!("  {}: {}", g.value_name(v), describe(v));
    }
    let weights: usize = g.initializers.values().map(|t| t.bytes().len()).sum();
    println!("initializers: {} ({} bytes)", g.initializers.len(), weights);
    println!("nodes: {}", g.nodes.node_count());
    for (op, n) in g.op_histogram() {
        println!("  {op}: {n}");
    }
    Ok(())
}
