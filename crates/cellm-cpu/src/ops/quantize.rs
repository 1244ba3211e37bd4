//! CPU kernels for DequantizeLinear, QuantizeLinear and DynamicQuantizeLinear.
//! Rounding is half to even and results saturate to the integer type's range,
//! as onnxruntime does.

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{DequantizeLinear, DynamicQuantizeLinear, QuantizeLinear};
use cellm_ir::shape::normalize_axis;
use cellm_ir::{DType, Tensor};

/// For each element of a tensor of `shape`, the index of its scale / zero
/// point: 0 per tensor, the `axis` coordinate per axis, or the block of the
/// `axis` coordinate when `block_size` > 0 (scales then have x's rank).
fn param_index(
    shape: &[usize],
    params: &[usize],
    axis: i64,
    block_size: usize,
    what: &str,
) -> Result<Box<dyn Fn(usize) -> usize>> {
    let count: usize = params.iter().product();
    if count == 1 {
        return Ok(Box::new(|_| 0));
    }
    let axis = normalize_axis(axis, shape.len()).with_context(|| format!("{what}: axis"))?;
    let inner: usize = shape[axis + 1..].iter().product();
    let dim = shape[axis];
    if block_size == 0 {
        if params.len() != 1 || params[0] != dim {
            bail!("{what}: per-axis scale {params:?} must be 1-D of length {dim} (axis {axis} of {shape:?})");
        }
        return Ok(Box::new(move |i| (i / inner) % dim));
    }
    let blocks = dim.div_ceil(block_size);
    let mut expect = shape.to_vec();
    expect[axis] = blocks;
    if params != expect.as_slice() {
        bail!("{what}: blocked scale {params:?} must be {expect:?}");
    }
    let outer_stride = dim * inner;
    Ok(Box::new(move |i| {
        let outer = i / outer_stride;
        let a = (i / inner) % dim;
        let r = i % inner;
        (outer * blocks + a / block_size) * inner + r
    }))
}

/// Integer values as i32 (u8, i8 or i32 tensors).
pub(crate) fn ints_i32(t: &Tensor, what: &str) -> Result<Vec<i32>> {
    Ok(match t.dtype() {
        DType::U8 => t.view::<u8>()?.iter().map(|&v| v as i32).collect(),
        DType::I8 => t.view::<i8>()?.iter().map(|&v| v as i32).collect(),
        DType::I32 => t.view::<i32>()?.to_vec(),
        other => bail!("{what}: expected u8, i8 or i32, got {other}"),
    })
}

pub fn run_dequantize(op: &DequantizeLinear, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("DequantizeLinear input x")?;
    let scale = input(inputs, 1).context("DequantizeLinear input x_scale")?;
    let zp = opt_input(inputs, 2);
    if let Some(z) = zp {
        if z.dtype() != x.dtype() || z.shape() != scale.shape() {
            bail!(
                "DequantizeLinear: x_zero_point {} {:?} must match x's dtype {} and x_scale's shape {:?}",
                z.dtype(),
                z.shape(),
                x.dtype(),
                scale.shape()
            );
        }
    }
    let xv = ints_i32(x, "DequantizeLinear x")?;
    let sv = f32_values(scale, "DequantizeLinear x_scale")?;
    let zv = match zp {
        Some(z) => ints_i32(z, "DequantizeLinear x_zero_point")?,
        None => vec![0; sv.len()],
    };
    let idx = param_index(
        x.shape(),
        scale.shape(),
        op.axis,
        op.block_size,
        "DequantizeLinear",
    )?;
    let y: Vec<f32> = xv
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let p = idx(i);
            (q - zv[p]) as f32 * sv[p]
        })
        .collect();
    Ok(vec![f32_to_tensor(scale.dtype(), x.shape().to_vec(), y)?])
}

/// Range of a quantized dtype.
fn qrange(dtype: DType) -> Result<(f32, f32)> {
    match dtype {
        DType::U8 => Ok((0.0, 255.0)),
        DType::I8 => Ok((-128.0, 127.0)),
        other => bail!("quantized output must be u8 or i8, got {other}"),
    }
}

/// i32 values (already in range) as a tensor of `dtype`.
fn store_q(dtype: DType, shape: Vec<usize>, q: Vec<i32>) -> Result<Tensor> {
    Ok(match dtype {
        DType::U8 => Tensor::from_vec(shape, q.into_iter().map(|v| v as u8).collect::<Vec<_>>()),
        DType::I8 => Tensor::from_vec(shape, q.into_iter().map(|v| v as i8).collect::<Vec<_>>()),
        other => bail!("quantized output must be u8 or i8, got {other}"),
    })
}

/// `saturate(round_half_even(x / scale) + zp)`.
fn quantize_one(x: f32, scale: f32, zp: i32, lo: f32, hi: f32) -> i32 {
    ((x / scale).round_ties_even() + zp as f32).clamp(lo, hi) as i32
}

pub fn run_quantize(op: &QuantizeLinear, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("QuantizeLinear input x")?;
    let scale = input(inputs, 1).context("QuantizeLinear input y_scale")?;
    let zp = opt_input(inputs, 2);
    let out_dtype = zp.map_or(op.output_dtype, |z| z.dtype());
    let (lo, hi) = qrange(out_dtype).context("QuantizeLinear")?;
    let xv: Vec<f32> = match x.dtype() {
        DType::I32 => x.view::<i32>()?.iter().map(|&v| v as f32).collect(),
        _ => f32_values(x, "QuantizeLinear x")?.into_owned(),
    };
    let sv = f32_values(scale, "QuantizeLinear y_scale")?;
    let zv = match zp {
        Some(z) => {
            if z.shape() != scale.shape() {
                bail!(
                    "QuantizeLinear: y_zero_point {:?} must have y_scale's shape {:?}",
                    z.shape(),
                    scale.shape()
                );
            }
            ints_i32(z, "QuantizeLinear y_zero_point")?
        }
        None => vec![0; sv.len()],
    };
    let idx = param_index(
        x.shape(),
        scale.shape(),
        op.axis,
        op.block_size,
        "QuantizeLinear",
    )?;
    let q: Vec<i32> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let p = idx(i);
            quantize_one(v, sv[p], zv[p], lo, hi)
        })
        .collect();
    Ok(vec![store_q(out_dtype, x.shape().to_vec(), q)?])
}

pub fn run_dynamic(_op: &DynamicQuantizeLinear, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("DynamicQuantizeLinear input x")?;
    if x.dtype() != DType::F32 {
        bail!("DynamicQuantizeLinear: x must be f32, got {}", x.dtype());
    }
    let xv = x.f32s()?;
    // The range always holds 0 so that 0 is exactly representable.
    let (mut min, mut max) = (0f32, 0f32);
    for &v in xv {
        min = min.min(v);
        max = max.max(v);
    }
    // onnxruntime uses scale 1 for an all-zero input (avoids 0/0).
    let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
    let zp = (0.0 - min / scale).clamp(0.0, 255.0).round_ties_even() as i32;
    let q: Vec<i32> = xv
        .iter()
        .map(|&v| quantize_one(v, scale, zp, 0.0, 255.0))
        .collect();
    Ok(vec![
        store_q(DType::U8, x.shape().to_vec(), q)?,
        Tensor::from_vec(vec![], vec![scale]),
        Tensor::from_vec(vec![], vec![zp as u8]),
    ])
}
