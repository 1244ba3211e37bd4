//! CPU kernel for Flatten: `[prod(dims[..axis]), prod(dims[axis..])]`.

use super::common::input;
use anyhow::{bail, Result};
use cellm_ir::ops::Flatten;
use cellm_ir::shape::numel;
use cellm_ir::Tensor;

pub fn run(op: &Flatten, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let r = x.rank() as i64;
    // Unlike most axes, Flatten's may equal the rank.
    let axis = if op.axis < 0 { op.axis + r } else { op.axis };
    if !(0..=r).contains(&axis) {
        bail!("Flatten axis {} is out of range for rank {r}", op.axis);
    }
    let axis = axis as usize;
    let shape = vec![numel(&x.shape()[..axis]), numel(&x.shape()[axis..])];
    Ok(vec![x.reshaped(shape)?])
}
