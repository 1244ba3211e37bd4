//! CPU kernel for Trilu.

use anyhow::{bail, Result};
use cellm_ir::ops::Trilu;
use cellm_ir::Tensor;

pub fn run(_op: &Trilu, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Trilu is not implemented on the CPU yet")
}
