//! Where with broadcasting (`shaders/where_op.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{broadcast_strides, dims8, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::shape::broadcast_shapes;
use cellm_ir::DType;

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let c = args.d(0, "Where condition")?;
    let x = args.d(1, "Where X")?;
    let y = args.d(2, "Where Y")?;
    if c.dtype != DType::Bool || x.dtype != y.dtype {
        bail!(
            "Where: condition {} / X {} / Y {} dtypes are invalid",
            c.dtype,
            x.dtype,
            y.dtype
        );
    }
    let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &x.shape)?, &y.shape)?;
    let out = k.alloc(x.dtype, shape.clone())?;
    let n = out.len();
    let mut p = vec![u32_of(n, "Where")?, shape.len() as u32, 0, 0];
    p.extend(dims8(&shape, "Where")?);
    p.extend(dims8(
        &broadcast_strides(&c.shape, &shape)?,
        "Where condition",
    )?);
    p.extend(dims8(&broadcast_strides(&x.shape, &shape)?, "Where X")?);
    p.extend(dims8(&broadcast_strides(&y.shape, &shape)?, "Where Y")?);
    k.dispatch_1d("where_op", &p, &[c, x, y, &out], n)?;
    Ok(vec![out])
}
