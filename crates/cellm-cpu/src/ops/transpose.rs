//! CPU kernel for Transpose: output axis i is input axis `perm[i]` (reversed
//! axes without `perm`).

use super::common::{contiguous_strides, input, strided_tensor};
use anyhow::{bail, Result};
use cellm_ir::ops::Transpose;
use cellm_ir::Tensor;

pub fn run(op: &Transpose, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let r = x.rank();
    let perm = op.perm.clone().unwrap_or_else(|| (0..r).rev().collect());
    let mut seen = vec![false; r];
    for &p in &perm {
        if p >= r || seen[p] {
            bail!("Transpose perm {perm:?} is not a permutation of {r} axes");
        }
        seen[p] = true;
    }
    if perm.len() != r {
        bail!("Transpose perm {perm:?} is not a permutation of {r} axes");
    }
    let own = contiguous_strides(x.shape());
    let shape = perm.iter().map(|&p| x.shape()[p]).collect();
    let strides: Vec<isize> = perm.iter().map(|&p| own[p]).collect();
    Ok(vec![strided_tensor(x, shape, &strides, 0)?])
}
