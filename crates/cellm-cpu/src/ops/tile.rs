//! CPU kernel for Tile: repeats the input `repeats[i]` times along each axis.
//! Read as a strided view of shape `[r0, d0, r1, d1, ...]` whose repeat dims
//! have stride 0.

use super::common::{contiguous_strides, input, int_list, strided_tensor, to_dim};
use anyhow::{bail, Result};
use cellm_ir::ops::Tile;
use cellm_ir::Tensor;

pub fn run(_op: &Tile, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let repeats = int_list(input(inputs, 1)?, "Tile repeats")?;
    if repeats.len() != x.rank() {
        bail!(
            "Tile repeats has {} values for a rank-{} input",
            repeats.len(),
            x.rank()
        );
    }
    let own = contiguous_strides(x.shape());
    let mut view_shape = Vec::with_capacity(2 * x.rank());
    let mut view_strides = Vec::with_capacity(2 * x.rank());
    let mut out_shape = Vec::with_capacity(x.rank());
    for (i, &r) in repeats.iter().enumerate() {
        let r = to_dim(r, "Tile repeats")?;
        view_shape.extend([r, x.shape()[i]]);
        view_strides.extend([0, own[i]]);
        out_shape.push(r * x.shape()[i]);
    }
    let t = strided_tensor(x, view_shape, &view_strides, 0)?;
    Ok(vec![t.reshaped(out_shape)?])
}
