//! CPU kernel for NonZero.

use anyhow::{bail, Result};
use cellm_ir::ops::NonZero;
use cellm_ir::Tensor;

pub fn run(_op: &NonZero, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("NonZero is not implemented on the CPU yet")
}
