//! CPU kernel for MultiHeadAttention.

use anyhow::{bail, Result};
use cellm_ir::ops::MultiHeadAttention;
use cellm_ir::Tensor;

pub fn run(_op: &MultiHeadAttention, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("MultiHeadAttention is not implemented on the CPU yet")
}
