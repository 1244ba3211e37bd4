//! CPU kernel for LayerNormalization.

use anyhow::{bail, Result};
use cellm_ir::ops::LayerNormalization;
use cellm_ir::Tensor;

pub fn run(_op: &LayerNormalization, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("LayerNormalization is not implemented on the CPU yet")
}
