//! CPU kernel for Range.

use anyhow::{bail, Result};
use cellm_ir::ops::Range;
use cellm_ir::Tensor;

pub fn run(_op: &Range, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Range is not implemented on the CPU yet")
}
