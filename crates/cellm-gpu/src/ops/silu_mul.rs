//! SiluMul, elementwise over equal shapes (`shaders/silu_mul.wgsl`):
//! gate·sigmoid(gate)·up. Broadcasting operands run on the host.

use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};

/// Float gate and up of one dtype and shape.
pub fn supported(args: &Args) -> bool {
    match (args.od(0), args.od(1)) {
        (Some(g), Some(u)) => {
            matches!(g.dtype, cellm_ir::DType::F32 | cellm_ir::DType::F16)
                && g.dtype == u.dtype
                && g.shape == u.shape
        }
        _ => false,
    }
}

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let gate = args.d(0, "SiluMul gate")?;
    let up = args.d(1, "SiluMul up")?;
    need_float(gate, "SiluMul gate")?;
    if gate.dtype != up.dtype || gate.shape != up.shape {
        bail!(
            "SiluMul: gate ({} {:?}) and up ({} {:?}) must match on the device",
            gate.dtype,
            gate.shape,
            up.dtype,
            up.shape
        );
    }
    let out = k.alloc(gate.dtype, gate.shape.clone())?;
    let n = gate.len();
    k.dispatch_1d("silu_mul", &[u32_of(n, "SiluMul")?], &[gate, up, &out], n)?;
    Ok(vec![out])
}
