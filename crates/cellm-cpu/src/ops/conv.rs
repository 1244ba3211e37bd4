//! CPU kernel for Conv.

use anyhow::{bail, Result};
use cellm_ir::ops::Conv;
use cellm_ir::Tensor;

pub fn run(_op: &Conv, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Conv is not implemented on the CPU yet")
}
