//! CPU kernel for Flatten.

use anyhow::{bail, Result};
use cellm_ir::ops::Flatten;
use cellm_ir::Tensor;

pub fn run(_op: &Flatten, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Flatten is not implemented on the CPU yet")
}
