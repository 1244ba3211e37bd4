//! CPU kernel for Expand: bidirectional numpy broadcast of input 0 with the
//! shape in input 1.

use super::common::{expand_to, input, int_list, to_dim};
use anyhow::Result;
use cellm_ir::ops::Expand;
use cellm_ir::shape::broadcast_shapes;
use cellm_ir::Tensor;

pub fn run(_op: &Expand, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let dims = int_list(input(inputs, 1)?, "Expand shape")?;
    let want: Vec<usize> = dims
        .iter()
        .map(|&d| to_dim(d, "Expand shape"))
        .collect::<Result<_>>()?;
    let shape = broadcast_shapes(x.shape(), &want)?;
    Ok(vec![expand_to(x, &shape)?])
}
