//! CPU kernel for Transpose.

use anyhow::{bail, Result};
use cellm_ir::ops::Transpose;
use cellm_ir::Tensor;

pub fn run(_op: &Transpose, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Transpose is not implemented on the CPU yet")
}
