//! CPU kernel for Unsqueeze.

use anyhow::{bail, Result};
use cellm_ir::ops::Unsqueeze;
use cellm_ir::Tensor;

pub fn run(_op: &Unsqueeze, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Unsqueeze is not implemented on the CPU yet")
}
