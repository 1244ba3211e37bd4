//! `cellm-run exec`: one graph, .npy in, .npy out.

use crate::backend_arg::BackendArg;
use anyhow::{bail, Context, Result};
use cellm_ir::npy;
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExecArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// Folder with one `<input name>.npy` per graph input.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Folder to write one `<output name>.npy` per graph output into (created if missing).
    #[arg(long)]
    pub outputs: PathBuf,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Run the graph this many times and report the median run time (a
    /// timing mode; the first run includes pipeline compilation).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Run the graph as imported, without the optimisation passes (and without a plan).
    #[arg(long)]
    pub no_opt: bool,
    /// Plans folder (default `$CELLM_CACHE_DIR/plans` or the user cache's `cellm/plans`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Storage of MatMul weights: f32 (as in the model) or f16 (half the
    /// bytes; f32 accumulation, about 1e-3 relative change in outputs). The
    /// graph's inputs and outputs keep their dtypes.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    pub dtype: String,
}

pub fn run(a: ExecArgs) -> Result<()> {
    let backend = a.backend.resolve()?;
    let t0 = std::time::Instant::now();
    if a.no_opt && a.dtype != "f32" {
        anyhow::bail!(
            "--dtype {} needs the optimisation passes; drop --no-opt",
            a.dtype
        );
    }
    let exe = if a.no_opt {
        let opts = cellm_runtime::ExecOptions {
            optimize: false,
            ..Default::default()
        };
        cellm_runtime::Executable::with_options(cellm_onnx::load(&a.model)?, &backend, &opts)?
    } else {
        let dir = cellm_runtime::plan::cache_dir(a.cache_dir.as_deref());
        let plan = cellm_runtime::plan::load_or_compile(
            std::slice::from_ref(&a.model),
            &cellm_runtime::plan::PlanOptions {
                dtype: a.dtype.clone(),
                ..Default::default()
            },
            &backend,
            &dir,
            false,
        )?;
        eprintln!("{}", plan.info.report());
        let graph = plan
            .graphs
            .into_iter()
            .next()
            .context("the plan holds no graph")?;
        cellm_runtime::Executable::prepared(graph, &backend)?
    };
    let load_s = t0.elapsed().as_secs_f64();
    let graph = exe.graph();
    if !a.inputs.is_dir() {
        bail!("--inputs {}: not a folder", a.inputs.display());
    }
    let mut inputs = HashMap::new();
    for &v in &graph.inputs {
        let name = graph.value_name(v);
        let path = a.inputs.join(format!("{name}.npy"));
        if !path.exists() {
            bail!("missing input '{name}': {} does not exist", path.display());
        }
        let t = npy::read(&path).with_context(|| format!("input '{name}'"))?;
        inputs.insert(name.to_string(), t);
    }
    let mut times = Vec::new();
    let mut outputs = HashMap::new();
    for _ in 0..a.repeat.max(1) {
        let t1 = std::time::Instant::now();
        outputs = exe
            .run(&inputs)
            .with_context(|| format!("running {}", a.model.display()))?;
        times.push(t1.elapsed().as_secs_f64());
    }
    let run_s = times[0];
    eprintln!(
        "{}: loaded in {load_s:.3} s, ran in {run_s:.3} s",
        backend.name()
    );
    if times.len() > 1 {
        let first = times[0];
        times.sort_by(f64::total_cmp);
        eprintln!(
            "{} runs: median {:.4} s, min {:.4} s, max {:.4} s (first {first:.4} s)",
            times.len(),
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    std::fs::create_dir_all(&a.outputs)
        .with_context(|| format!("cannot create {}", a.outputs.display()))?;
    for &v in &graph.outputs {
        let name = graph.value_name(v);
        let t = &outputs[name];
        npy::write(&a.outputs.join(format!("{name}.npy")), t)?;
        println!("{name}: {} {:?}", t.dtype(), t.shape());
    }
    Ok(())
}
