//! CPU kernel for Split.

use anyhow::{bail, Result};
use cellm_ir::ops::Split;
use cellm_ir::Tensor;

pub fn run(_op: &Split, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Split is not implemented on the CPU yet")
}
