//! CPU kernel for SkipSimplifiedLayerNormalization.

use anyhow::{bail, Result};
use cellm_ir::ops::SkipSimplifiedLayerNormalization;
use cellm_ir::Tensor;

pub fn run(_op: &SkipSimplifiedLayerNormalization, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("SkipSimplifiedLayerNormalization is not implemented on the CPU yet")
}
