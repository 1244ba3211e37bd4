//! CPU kernel for Slice.

use anyhow::{bail, Result};
use cellm_ir::ops::Slice;
use cellm_ir::Tensor;

pub fn run(_op: &Slice, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Slice is not implemented on the CPU yet")
}
