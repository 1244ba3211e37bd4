//! CPU kernel for GatherND.

use anyhow::{bail, Result};
use cellm_ir::ops::GatherND;
use cellm_ir::Tensor;

pub fn run(_op: &GatherND, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("GatherND is not implemented on the CPU yet")
}
