//! CPU kernel for Unary.

use anyhow::{bail, Result};
use cellm_ir::ops::Unary;
use cellm_ir::Tensor;

pub fn run(_op: &Unary, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Unary is not implemented on the CPU yet")
}
