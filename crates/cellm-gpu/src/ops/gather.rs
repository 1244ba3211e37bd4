//! Gather along one axis (`shaders/gather.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern, Word};
use anyhow::{bail, Result};
use cellm_ir::ops::Gather;
use cellm_ir::shape::normalize_axis;

pub fn encode(k: &mut Kern, op: &Gather, args: &Args) -> Result<Vec<DevTensor>> {
    let data = args.d(0, "Gather data")?;
    let idx = args.d(1, "Gather indices")?;
    if word_of(idx.dtype)? != Word::I32 {
        bail!("Gather: indices must be integers, got {}", idx.dtype);
    }
    let axis = normalize_axis(op.axis, data.shape.len())?;
    let mut shape = data.shape[..axis].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&data.shape[axis + 1..]);
    let inner: usize = data.shape[axis + 1..].iter().product();
    let out = k.alloc(data.dtype, shape)?;
    let n = out.len();
    let p = [
        u32_of(n, "Gather")?,
        u32_of(data.shape[axis], "Gather axis")?,
        u32_of(inner, "Gather")?,
        u32_of(idx.len(), "Gather")?,
    ];
    k.dispatch_1d("gather", &p, &[data, idx, &out], n)?;
    Ok(vec![out])
}
