//! CPU kernel for Softmax.

use anyhow::{bail, Result};
use cellm_ir::ops::Softmax;
use cellm_ir::Tensor;

pub fn run(_op: &Softmax, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Softmax is not implemented on the CPU yet")
}
