//! Transpose: a strided copy with permuted source strides.

use super::{strided_copy, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::Transpose;

pub fn encode(k: &mut Kern, op: &Transpose, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Transpose data")?;
    let rank = x.shape.len();
    let perm: Vec<usize> = op.perm.clone().unwrap_or_else(|| (0..rank).rev().collect());
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        bail!("Transpose: perm {perm:?} is not a permutation of rank {rank}");
    }
    let st = strides(&x.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let src_strides: Vec<isize> = perm.iter().map(|&p| st[p] as isize).collect();
    let out = k.alloc(x.dtype, shape.clone())?;
    let dst = strides(&shape);
    strided_copy::encode(
        k,
        x,
        &out,
        &strided_copy::Copy {
            shape: &shape,
            src_base: 0,
            src_strides: &src_strides,
            src_mods: None,
            dst_base: 0,
            dst_strides: &dst,
        },
    )?;
    Ok(vec![out])
}
