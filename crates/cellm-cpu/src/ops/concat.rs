//! CPU kernel for Concat.

use anyhow::{bail, Result};
use cellm_ir::ops::Concat;
use cellm_ir::Tensor;

pub fn run(_op: &Concat, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Concat is not implemented on the CPU yet")
}
