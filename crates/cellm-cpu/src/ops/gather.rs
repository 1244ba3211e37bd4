//! CPU kernel for Gather.

use anyhow::{bail, Result};
use cellm_ir::ops::Gather;
use cellm_ir::Tensor;

pub fn run(_op: &Gather, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Gather is not implemented on the CPU yet")
}
