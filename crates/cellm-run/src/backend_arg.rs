//! The `--backend` flag shared by every command.

use anyhow::{bail, Result};
use cellm_runtime::Backend;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The GPU when one is usable, else the CPU (with a notice).
    Auto,
    Cpu,
    Gpu,
    /// Alias of `gpu` (the seed tools' name).
    Metal,
}

impl BackendArg {
    pub fn resolve(self) -> Result<Backend> {
        match self {
            BackendArg::Cpu | BackendArg::Auto => Ok(Backend::Cpu),
            BackendArg::Gpu | BackendArg::Metal => {
                bail!("--backend gpu: this build has no GPU backend yet; use --backend cpu")
            }
        }
    }
}
