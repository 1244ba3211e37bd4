//! CPU kernel for ConstantOfShape.

use anyhow::{bail, Result};
use cellm_ir::ops::ConstantOfShape;
use cellm_ir::Tensor;

pub fn run(_op: &ConstantOfShape, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("ConstantOfShape is not implemented on the CPU yet")
}
