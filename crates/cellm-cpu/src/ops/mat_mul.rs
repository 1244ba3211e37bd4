//! CPU kernel for MatMul.

use anyhow::{bail, Result};
use cellm_ir::ops::MatMul;
use cellm_ir::Tensor;

pub fn run(_op: &MatMul, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("MatMul is not implemented on the CPU yet")
}
