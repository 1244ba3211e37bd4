//! CPU kernel for SimplifiedLayerNormalization.

use anyhow::{bail, Result};
use cellm_ir::ops::SimplifiedLayerNormalization;
use cellm_ir::Tensor;

pub fn run(_op: &SimplifiedLayerNormalization, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("SimplifiedLayerNormalization is not implemented on the CPU yet")
}
