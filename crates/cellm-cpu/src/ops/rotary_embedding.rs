//! CPU kernel for RotaryEmbedding.

use anyhow::{bail, Result};
use cellm_ir::ops::RotaryEmbedding;
use cellm_ir::Tensor;

pub fn run(_op: &RotaryEmbedding, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("RotaryEmbedding is not implemented on the CPU yet")
}
