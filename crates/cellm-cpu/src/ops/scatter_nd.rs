//! CPU kernel for ScatterND.

use anyhow::{bail, Result};
use cellm_ir::ops::ScatterND;
use cellm_ir::Tensor;

pub fn run(_op: &ScatterND, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("ScatterND is not implemented on the CPU yet")
}
