//! Softmax along one axis (`shaders/softmax.wgsl`).

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::Softmax;
use cellm_ir::shape::normalize_axis;

pub fn encode(k: &mut Kern, op: &Softmax, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Softmax input")?;
    need_float(x, "Softmax input")?;
    let axis = normalize_axis(op.axis, x.shape.len())?;
    let len = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let rows = x.len().checked_div(len).unwrap_or(0);
    let out = k.alloc(x.dtype, x.shape.clone())?;
    let p = [
        u32_of(rows, "Softmax")?,
        u32_of(len, "Softmax")?,
        u32_of(inner.max(1), "Softmax")?,
    ];
    k.dispatch_groups("softmax", &p, &[x, &out], rows)?;
    Ok(vec![out])
}
