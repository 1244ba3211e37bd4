//! CPU kernel for Shape.

use anyhow::{bail, Result};
use cellm_ir::ops::Shape;
use cellm_ir::Tensor;

pub fn run(_op: &Shape, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Shape is not implemented on the CPU yet")
}
