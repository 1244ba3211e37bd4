//! CPU kernel for Cast.

use anyhow::{bail, Result};
use cellm_ir::ops::Cast;
use cellm_ir::Tensor;

pub fn run(_op: &Cast, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Cast is not implemented on the CPU yet")
}
