//! CPU kernel for Where.

use anyhow::{bail, Result};
use cellm_ir::ops::Where;
use cellm_ir::Tensor;

pub fn run(_op: &Where, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Where is not implemented on the CPU yet")
}
