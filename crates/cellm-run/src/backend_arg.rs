//! The `--backend` flag shared by every command.

use anyhow::{Context, Result};
use cellm_runtime::Backend;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A hardware GPU when there is one, else the CPU (with one notice line).
    Auto,
    Cpu,
    /// Any wgpu adapter, software ones (lavapipe) included.
    Gpu,
    /// Alias of `gpu` (the seed tools' name).
    Metal,
}

impl BackendArg {
    pub fn resolve(self) -> Result<Backend> {
        match self {
            BackendArg::Cpu => Ok(Backend::Cpu),
            BackendArg::Gpu | BackendArg::Metal => {
                let ctx = cellm_gpu::GpuContext::new().context("--backend gpu")?;
                Ok(Backend::Gpu(ctx))
            }
            BackendArg::Auto => match cellm_gpu::GpuContext::new() {
                // A software adapter is slower than the CPU interpreter's own kernels.
                Ok(ctx) if ctx.adapter.device_type != "Cpu" => Ok(Backend::Gpu(ctx)),
                Ok(ctx) => {
                    eprintln!("note: only a software GPU adapter ({}) found; running on the CPU (use --backend gpu to force it)", ctx.adapter.name);
                    Ok(Backend::Cpu)
                }
                Err(e) => {
                    eprintln!("note: no usable GPU ({e:#}); running on the CPU");
                    Ok(Backend::Cpu)
                }
            },
        }
    }
}
