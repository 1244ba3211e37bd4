//! CPU kernel for Binary.

use anyhow::{bail, Result};
use cellm_ir::ops::Binary;
use cellm_ir::Tensor;

pub fn run(_op: &Binary, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Binary is not implemented on the CPU yet")
}
