//! CPU kernel for Squeeze.

use anyhow::{bail, Result};
use cellm_ir::ops::Squeeze;
use cellm_ir::Tensor;

pub fn run(_op: &Squeeze, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Squeeze is not implemented on the CPU yet")
}
