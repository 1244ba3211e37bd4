//! `cellm-run compile`: optimise a model folder's graphs (or one ONNX file)
//! into a plan in the plans cache; `exec` and `vlm` then load it.

use crate::backend_arg::BackendArg;
use anyhow::{bail, Result};
use cellm_runtime::model_dir::ModelDir;
use cellm_runtime::plan::{self, PlanOptions};
use cellm_runtime::smolvlm::GRAPHS;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CompileArgs {
    /// A SmolVLM model folder (its three graphs go into one plan) or one ONNX file.
    pub model: PathBuf,
    /// ONNX variant (file suffix) of a model folder: fp32, fp16, q4, …
    #[arg(long, default_value = "fp32")]
    pub onnx_variant: String,
    /// Storage dtype: f32 (the model's own dtypes) or f16 (MatMul weights as
    /// f16; decoders that load the plan keep their KV caches in f16 too).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// KV-cache capacity (part of the plan key; not used by any pass yet).
    #[arg(long)]
    pub max_seq: Option<usize>,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Plans folder (default `$CELLM_CACHE_DIR/plans` or the user cache's `cellm/plans`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Compile even when a valid plan is cached.
    #[arg(long)]
    pub force: bool,
    /// End with one JSON line: {"plan", "status", "seconds"}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: CompileArgs) -> Result<()> {
    if !matches!(a.dtype.as_str(), "f32" | "f16") {
        bail!("--dtype {}: expected f16 or f32", a.dtype);
    }
    let backend = a.backend.resolve()?;
    let models: Vec<PathBuf> = if a.model.is_dir() {
        let m = ModelDir::open(&a.model, &a.onnx_variant)?;
        GRAPHS.iter().map(|s| m.onnx_path(s)).collect()
    } else if a.model.is_file() {
        vec![a.model.clone()]
    } else {
        bail!("{}: no such model folder or file", a.model.display());
    };
    let opts = PlanOptions {
        dtype: a.dtype.clone(),
        max_seq: a.max_seq,
    };
    let dir = plan::cache_dir(a.cache_dir.as_deref());
    let p = plan::load_or_compile(&models, &opts, &backend, &dir, a.force)?;
    eprintln!("{}", p.info.report());
    for g in &p.graphs {
        println!(
            "{}: {} nodes, {} initializers",
            g.name,
            g.nodes.node_count(),
            g.initializers.len()
        );
    }
    let size = std::fs::metadata(&p.info.path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "{} {} ({size} bytes) in {:.3} s on {}",
        p.info.status.as_str(),
        p.info.path.display(),
        p.info.seconds,
        backend.name()
    );
    if a.json {
        println!("{}", p.info.json());
    }
    Ok(())
}
