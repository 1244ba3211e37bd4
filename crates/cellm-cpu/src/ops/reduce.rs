//! CPU kernel for Reduce.

use anyhow::{bail, Result};
use cellm_ir::ops::Reduce;
use cellm_ir::Tensor;

pub fn run(_op: &Reduce, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Reduce is not implemented on the CPU yet")
}
