//! Reshape, Flatten, Squeeze and Unsqueeze: views of the same buffer.

use super::{infer_shapes, Args};
use crate::kernel::DevTensor;
use anyhow::{Context, Result};
use cellm_ir::Op;

pub fn encode(op: &Op, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "data")?;
    let (_, shape) = infer_shapes(op, args).with_context(|| op.name())?.remove(0);
    Ok(vec![x.view(shape).with_context(|| op.name())?])
}
