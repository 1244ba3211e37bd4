//! SimplifiedLayerNormalization, i.e. RMS norm (`shaders/simplified_layer_norm.wgsl`).

use super::expand::broadcast_to;
use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::SimplifiedLayerNormalization;
use cellm_ir::shape::normalize_axis;
use cellm_ir::DType;

pub fn encode(
    k: &mut Kern,
    op: &SimplifiedLayerNormalization,
    args: &Args,
) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "SimplifiedLayerNormalization X")?;
    need_float(x, "SimplifiedLayerNormalization X")?;
    let axis = normalize_axis(op.axis, x.shape.len())?;
    let norm = &x.shape[axis..];
    let inner: usize = norm.iter().product();
    let rows: usize = x.shape[..axis].iter().product();
    let scale = broadcast_to(k, args.d(1, "SimplifiedLayerNormalization scale")?, norm)?;
    let mut stat = x.shape[..axis].to_vec();
    stat.resize(x.shape.len(), 1);
    let y = k.alloc(x.dtype, x.shape.clone())?;
    let inv = k.alloc(DType::F32, stat)?;
    let p = [
        u32_of(rows, "SimplifiedLayerNormalization")?,
        u32_of(inner, "SimplifiedLayerNormalization")?,
        op.epsilon.to_bits(),
    ];
    let n = if inner == 0 { 0 } else { rows };
    k.dispatch_groups("simplified_layer_norm", &p, &[x, &scale, &y, &inv], n)?;
    Ok(vec![y, inv])
}
