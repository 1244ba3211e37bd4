//! LayerNormalization (`shaders/layer_norm.wgsl`).

use super::expand::broadcast_to;
use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::Result;
use cellm_ir::ops::LayerNormalization;
use cellm_ir::shape::normalize_axis;
use cellm_ir::DType;

pub fn encode(k: &mut Kern, op: &LayerNormalization, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "LayerNormalization X")?;
    need_float(x, "LayerNormalization X")?;
    let axis = normalize_axis(op.axis, x.shape.len())?;
    let norm = &x.shape[axis..];
    let inner: usize = norm.iter().product();
    let rows: usize = x.shape[..axis].iter().product();
    let scale = broadcast_to(k, args.d(1, "LayerNormalization scale")?, norm)?;
    let bias = match args.od(2) {
        Some(b) => Some(broadcast_to(k, b, norm)?),
        None => None,
    };
    let mut stat = x.shape[..axis].to_vec();
    stat.resize(x.shape.len(), 1);
    let y = k.alloc(x.dtype, x.shape.clone())?;
    let mean = k.alloc(DType::F32, stat.clone())?;
    let inv = k.alloc(DType::F32, stat)?;
    let p = [
        u32_of(rows, "LayerNormalization")?,
        u32_of(inner, "LayerNormalization")?,
        op.epsilon.to_bits(),
        u32::from(bias.is_some()),
    ];
    let bias_buf = bias.as_ref().unwrap_or(&scale);
    let n = if inner == 0 { 0 } else { rows };
    k.dispatch_groups("layer_norm", &p, &[x, &scale, bias_buf, &y, &mean, &inv], n)?;
    Ok(vec![y, mean, inv])
}
