//! `cellm-run graph --dot`: Graphviz output.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct GraphArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// Write Graphviz DOT (the only format for now).
    #[arg(long)]
    pub dot: bool,
    /// Draw the graph after the optimisation passes (cellm-opt).
    #[arg(long)]
    pub optimized: bool,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(a: GraphArgs) -> Result<()> {
    if !a.dot {
        bail!("choose an output format: --dot");
    }
    let mut g = cellm_onnx::load(&a.model)?;
    if a.optimized {
        cellm_opt::optimize(&mut g)?;
    }
    let dot = cellm_ir::dot::to_dot(&g);
    match a.output {
        Some(p) => cellm_ir::fsutil::write_atomic(&p, dot.as_bytes())?,
        None => print!("{dot}"),
    }
    Ok(())
}
