//! ConstantOfShape on the device (`shaders/constant_of_shape.wgsl`); integer
//! outputs usually stay on the host as shape math.

use super::{u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::ConstantOfShape;
use cellm_ir::DType;

pub fn encode(k: &mut Kern, op: &ConstantOfShape, args: &Args) -> Result<Vec<DevTensor>> {
    let dims = args.ints(0, "ConstantOfShape shape")?;
    let shape = dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| anyhow::anyhow!("ConstantOfShape: negative dim in {dims:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let v = &op.value;
    let word = match v.dtype() {
        DType::F32 | DType::F16 => {
            let f = v
                .to_f32_vec()
                .context("ConstantOfShape value")?
                .first()
                .copied()
                .unwrap_or(0.0);
            // f16 tensors hold halves: the fill value is the half's bits.
            if v.dtype() == DType::F16 {
                u32::from(half::f16::from_f32(f).to_bits())
            } else {
                f.to_bits()
            }
        }
        DType::F64 => bail!("ConstantOfShape: f64 is not supported on the GPU"),
        _ => v
            .to_i64_vec()?
            .first()
            .copied()
            .unwrap_or(0)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32,
    };
    let out = k.alloc(v.dtype(), shape)?;
    let n = out.len();
    k.dispatch_1d(
        "constant_of_shape",
        &[u32_of(n, "ConstantOfShape")?, word],
        &[&out],
        n,
    )?;
    Ok(vec![out])
}
