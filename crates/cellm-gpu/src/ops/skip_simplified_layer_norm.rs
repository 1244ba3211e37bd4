//! com.microsoft SkipSimplifiedLayerNormalization (`shaders/skip_simplified_layer_norm.wgsl`).
//! Outputs: y, mean (always 0, as onnxruntime leaves it), inverse RMS, x + skip (+ bias).

use super::expand::broadcast_to;
use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::SkipSimplifiedLayerNormalization;
use cellm_ir::DType;

pub fn encode(
    k: &mut Kern,
    op: &SkipSimplifiedLayerNormalization,
    args: &Args,
) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "SkipSimplifiedLayerNormalization input")?;
    need_float(x, "SkipSimplifiedLayerNormalization input")?;
    let skip = args.d(1, "SkipSimplifiedLayerNormalization skip")?;
    let gamma = args.d(2, "SkipSimplifiedLayerNormalization gamma")?;
    let bias = args.od(3);
    let Some(&hidden) = x.shape.last() else {
        bail!("SkipSimplifiedLayerNormalization: scalar input")
    };
    if gamma.len() != hidden || bias.is_some_and(|b| b.len() != hidden) {
        bail!("SkipSimplifiedLayerNormalization: gamma/bias must have {hidden} values");
    }
    // Trailing-dims broadcasts index modulo the skip length; others are expanded.
    let trailing = !skip.is_empty() && x.len() % skip.len() == 0 && {
        let s: Vec<usize> = skip.shape.iter().copied().skip_while(|&d| d == 1).collect();
        x.shape.ends_with(&s)
    };
    let skip = if trailing {
        skip.clone()
    } else {
        broadcast_to(k, skip, &x.shape)?
    };
    let rows = x.len().checked_div(hidden).unwrap_or(0);
    let mut stat = x.shape.clone();
    if let Some(l) = stat.last_mut() {
        *l = 1;
    }
    let y = k.alloc(x.dtype, x.shape.clone())?;
    let mean = k.alloc(DType::F32, stat.clone())?;
    k.clear(&mean);
    let inv = k.alloc(DType::F32, stat)?;
    let sum = k.alloc(x.dtype, x.shape.clone())?;
    let p = [
        u32_of(rows, "SkipSimplifiedLayerNormalization")?,
        u32_of(hidden, "SkipSimplifiedLayerNormalization")?,
        op.epsilon.to_bits(),
        u32::from(bias.is_some()),
        u32_of(skip.len().max(1), "SkipSimplifiedLayerNormalization")?,
    ];
    let bias_buf = bias.unwrap_or(gamma);
    k.dispatch_groups(
        "skip_simplified_layer_norm",
        &p,
        &[x, &skip, gamma, bias_buf, &y, &inv, &sum],
        rows,
    )?;
    Ok(vec![y, mean, inv, sum])
}
