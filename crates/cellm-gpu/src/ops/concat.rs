//! Concat: one strided copy per input into its slab of the output.

use super::{strided_copy, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::Concat;
use cellm_ir::shape::normalize_axis;

pub fn encode(k: &mut Kern, op: &Concat, args: &Args) -> Result<Vec<DevTensor>> {
    let ins: Vec<&DevTensor> = args.dev.iter().flatten().collect();
    let Some(first) = ins.first() else {
        bail!("Concat has no inputs")
    };
    let rank = first.shape.len();
    let axis = normalize_axis(op.axis, rank)?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for t in &ins {
        if t.shape.len() != rank
            || t.dtype != first.dtype
            || t.shape
                .iter()
                .enumerate()
                .any(|(d, &n)| d != axis && n != first.shape[d])
        {
            bail!(
                "Concat: input {} {:?} does not match {} {:?} off axis {axis}",
                t.dtype,
                t.shape,
                first.dtype,
                first.shape
            );
        }
        shape[axis] += t.shape[axis];
    }
    let out = k.alloc(first.dtype, shape.clone())?;
    let dst = strides(&shape);
    let mut offset = 0;
    for t in ins {
        let src: Vec<isize> = strides(&t.shape).into_iter().map(|s| s as isize).collect();
        strided_copy::encode(
            k,
            t,
            &out,
            &strided_copy::Copy {
                shape: &t.shape,
                src_base: 0,
                src_strides: &src,
                src_mods: None,
                dst_base: offset * dst[axis],
                dst_strides: &dst,
            },
        )?;
        offset += t.shape[axis];
    }
    Ok(vec![out])
}
