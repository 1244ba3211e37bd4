//! CPU kernel for Reshape.

use anyhow::{bail, Result};
use cellm_ir::ops::Reshape;
use cellm_ir::Tensor;

pub fn run(_op: &Reshape, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Reshape is not implemented on the CPU yet")
}
