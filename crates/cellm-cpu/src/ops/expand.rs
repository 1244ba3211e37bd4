//! CPU kernel for Expand.

use anyhow::{bail, Result};
use cellm_ir::ops::Expand;
use cellm_ir::Tensor;

pub fn run(_op: &Expand, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Expand is not implemented on the CPU yet")
}
