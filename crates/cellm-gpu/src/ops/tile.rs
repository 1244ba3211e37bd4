//! Tile: a strided copy whose source coordinates wrap (modulo the input dims).

use super::{infer_shapes, strided_copy, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{Context, Result};
use cellm_ir::Op;

pub fn encode(k: &mut Kern, op: &Op, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Tile input")?;
    let (_, shape) = infer_shapes(op, args).context("Tile")?.remove(0);
    let out = k.alloc(x.dtype, shape.clone())?;
    let src: Vec<isize> = strides(&x.shape).into_iter().map(|s| s as isize).collect();
    strided_copy::encode(
        k,
        x,
        &out,
        &strided_copy::Copy {
            shape: &shape,
            src_base: 0,
            src_strides: &src,
            src_mods: Some(&x.shape),
            dst_base: 0,
            dst_strides: &strides(&shape),
        },
    )?;
    Ok(vec![out])
}
