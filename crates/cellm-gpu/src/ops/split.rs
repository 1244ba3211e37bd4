//! Split: one strided copy per output from its slab of the input.

use super::{infer_shapes, strided_copy, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{Context, Result};
use cellm_ir::ops::Split;
use cellm_ir::shape::normalize_axis;
use cellm_ir::Op;

pub fn encode(k: &mut Kern, op: &Op, split: &Split, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Split input")?;
    let axis = normalize_axis(split.axis, x.shape.len())?;
    let outs = infer_shapes(op, args).context("Split")?;
    let src_st: Vec<isize> = strides(&x.shape).into_iter().map(|s| s as isize).collect();
    let mut offset = 0;
    let mut result = Vec::new();
    for (_, shape) in outs {
        let out = k.alloc(x.dtype, shape.clone())?;
        strided_copy::encode(
            k,
            x,
            &out,
            &strided_copy::Copy {
                shape: &shape,
                src_base: (offset as isize) * src_st[axis],
                src_strides: &src_st,
                src_mods: None,
                dst_base: 0,
                dst_strides: &strides(&shape),
            },
        )?;
        offset += shape[axis];
        result.push(out);
    }
    Ok(result)
}
