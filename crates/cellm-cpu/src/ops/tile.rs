//! CPU kernel for Tile.

use anyhow::{bail, Result};
use cellm_ir::ops::Tile;
use cellm_ir::Tensor;

pub fn run(_op: &Tile, _inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    bail!("Tile is not implemented on the CPU yet")
}
