//! Helpers shared by the CPU kernels.

use anyhow::{anyhow, Result};
use cellm_ir::Tensor;

/// Input `i`, or an error saying it is required.
pub fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor> {
    inputs.get(i).copied().flatten().ok_or_else(|| anyhow!("input {i} is required"))
}

/// Optional input `i`.
pub fn opt_input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}
