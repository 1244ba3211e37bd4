//! Expand: a strided copy with zero strides on broadcast dims.

use super::{infer_shapes, strided_copy, Args};
use crate::kernel::{broadcast_strides, strides, DevTensor, Kern};
use anyhow::{Context, Result};
use cellm_ir::Op;

pub fn encode(k: &mut Kern, op: &Op, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Expand input")?;
    let (_, shape) = infer_shapes(op, args).context("Expand")?.remove(0);
    let out = k.alloc(x.dtype, shape.clone())?;
    let src: Vec<isize> = broadcast_strides(&x.shape, &shape)
        .context("Expand")?
        .into_iter()
        .map(|s| s as isize)
        .collect();
    strided_copy::encode(
        k,
        x,
        &out,
        &strided_copy::Copy {
            shape: &shape,
            src_base: 0,
            src_strides: &src,
            src_mods: None,
            dst_base: 0,
            dst_strides: &strides(&shape),
        },
    )?;
    Ok(vec![out])
}

/// `t` broadcast to `shape`: a view when the element count already matches
/// (same values in row-major order), else a copy.
pub fn broadcast_to(k: &mut Kern, t: &DevTensor, shape: &[usize]) -> Result<DevTensor> {
    if t.len() == shape.iter().product::<usize>() {
        return t.view(shape.to_vec());
    }
    let out = k.alloc(t.dtype, shape.to_vec())?;
    let src: Vec<isize> = broadcast_strides(&t.shape, shape)?
        .into_iter()
        .map(|s| s as isize)
        .collect();
    strided_copy::encode(
        k,
        t,
        &out,
        &strided_copy::Copy {
            shape,
            src_base: 0,
            src_strides: &src,
            src_mods: None,
            dst_base: 0,
            dst_strides: &strides(shape),
        },
    )?;
    Ok(out)
}
