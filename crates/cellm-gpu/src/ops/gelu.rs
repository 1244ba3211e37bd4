//! Gelu, elementwise (`shaders/gelu.wgsl`): erf form or tanh approximation.

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::{Gelu, GeluApproximation};

/// f32/f16 inputs (other dtypes run on the host).
pub fn supported(args: &Args) -> bool {
    args.od(0)
        .is_some_and(|x| matches!(x.dtype, cellm_ir::DType::F32 | cellm_ir::DType::F16))
}

pub fn encode(k: &mut Kern, op: &Gelu, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Gelu X")?;
    need_float(x, "Gelu X")?;
    let out = k.alloc(x.dtype, x.shape.clone())?;
    let n = x.len();
    let approximate = match op.approximate {
        GeluApproximation::None => 0,
        GeluApproximation::Tanh => 1,
    };
    k.dispatch_1d("gelu", &[u32_of(n, "Gelu")?, approximate], &[x, &out], n)?;
    Ok(vec![out])
}
