//! DequantizeLinear (`shaders/dequantize.wgsl`), QuantizeLinear
//! (`shaders/quantize.wgsl`) and DynamicQuantizeLinear (range and scale in
//! one workgroup, `shaders/quantize_range.wgsl`, then `quantize.wgsl` reading
//! them from the device). u8/i8 tensors are byte-stored. Division is
//! correctly rounded and rounding is half to even, so codes match the CPU
//! reference (and onnxruntime) exactly.

use super::{u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{DequantizeLinear, QuantizeLinear};
use cellm_ir::shape::normalize_axis;
use cellm_ir::DType;

/// Where each element's scale / zero point comes from: `[mode, inner, dim,
/// block, blocks]` with mode 0 per tensor, 1 per axis, 2 per block along the axis.
fn param_layout(
    shape: &[usize],
    params: &[usize],
    axis: i64,
    block_size: usize,
    what: &str,
) -> Result<[u32; 5]> {
    let count: usize = params.iter().product();
    if count == 1 {
        return Ok([0; 5]);
    }
    let axis = normalize_axis(axis, shape.len()).with_context(|| format!("{what}: axis"))?;
    let inner: usize = shape[axis + 1..].iter().product();
    let dim = shape[axis];
    if block_size == 0 {
        if params.len() != 1 || params[0] != dim {
            bail!("{what}: per-axis scale {params:?} must be 1-D of length {dim} (axis {axis} of {shape:?})");
        }
        return Ok([1, u32_of(inner, what)?, u32_of(dim, what)?, 0, 0]);
    }
    let blocks = dim.div_ceil(block_size);
    let mut expect = shape.to_vec();
    expect[axis] = blocks;
    if params != expect.as_slice() {
        bail!("{what}: blocked scale {params:?} must be {expect:?}");
    }
    Ok([
        2,
        u32_of(inner, what)?,
        u32_of(dim, what)?,
        u32_of(block_size, what)?,
        u32_of(blocks, what)?,
    ])
}

fn float(t: Option<&DevTensor>) -> bool {
    t.is_some_and(|t| matches!(t.dtype, DType::F32 | DType::F16))
}

pub fn dequantize_supported(args: &Args) -> bool {
    args.od(0)
        .is_some_and(|x| matches!(x.dtype, DType::U8 | DType::I8 | DType::I32))
        && float(args.od(1))
}

pub fn quantize_supported(args: &Args) -> bool {
    args.od(0)
        .is_some_and(|x| matches!(x.dtype, DType::F32 | DType::F16 | DType::I32))
        && float(args.od(1))
        && args
            .od(2)
            .is_none_or(|z| matches!(z.dtype, DType::U8 | DType::I8))
}

pub fn dynamic_supported(args: &Args) -> bool {
    args.od(0).is_some_and(|x| x.dtype == DType::F32)
}

pub fn encode_dequantize(
    k: &mut Kern,
    op: &DequantizeLinear,
    args: &Args,
) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "DequantizeLinear x")?;
    let scale = args.d(1, "DequantizeLinear x_scale")?;
    let zp = args.od(2);
    if !matches!(x.dtype, DType::U8 | DType::I8 | DType::I32) {
        bail!("DequantizeLinear: x must be u8, i8 or i32, got {}", x.dtype);
    }
    super::need_float(scale, "DequantizeLinear x_scale")?;
    if let Some(z) = zp {
        if z.dtype != x.dtype || z.shape != scale.shape {
            bail!(
                "DequantizeLinear: x_zero_point {} {:?} must match x's dtype {} and x_scale's shape {:?}",
                z.dtype,
                z.shape,
                x.dtype,
                scale.shape
            );
        }
    }
    let lay = param_layout(
        &x.shape,
        &scale.shape,
        op.axis,
        op.block_size,
        "DequantizeLinear",
    )?;
    let out = k.alloc(scale.dtype, x.shape.clone())?;
    let n = out.len();
    let mut p = vec![u32_of(n, "DequantizeLinear")?];
    p.extend(lay);
    p.push(u32::from(zp.is_some()));
    // An absent zero point binds a read-only stand-in the kernel never reads.
    k.dispatch_1d("dequantize", &p, &[x, scale, zp.unwrap_or(x), &out], n)?;
    Ok(vec![out])
}

/// Range of a quantized dtype.
fn qrange(dtype: DType) -> Result<(i32, i32)> {
    match dtype {
        DType::U8 => Ok((0, 255)),
        DType::I8 => Ok((-128, 127)),
        other => bail!("quantized output must be u8 or i8, got {other}"),
    }
}

/// The quantize dispatch: `x` into `out` (u8/i8) through `scale` / `zp`.
fn dispatch_quantize(
    k: &mut Kern,
    x: &DevTensor,
    scale: &DevTensor,
    zp: Option<&DevTensor>,
    out: &DevTensor,
    lay: [u32; 5],
    what: &str,
) -> Result<()> {
    let (lo, hi) = qrange(out.dtype).context(what.to_string())?;
    let n = out.len();
    let mut p = vec![u32_of(n, what)?, u32::from(x.dtype == DType::I32)];
    p.extend(lay);
    p.push(u32::from(zp.is_some()));
    p.push(lo as u32);
    p.push(hi as u32);
    // One thread per four outputs (one word of the byte-stored output).
    k.dispatch_1d(
        "quantize",
        &p,
        &[x, scale, zp.unwrap_or(scale), out],
        n.div_ceil(4),
    )
}

pub fn encode_quantize(k: &mut Kern, op: &QuantizeLinear, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "QuantizeLinear x")?;
    let scale = args.d(1, "QuantizeLinear y_scale")?;
    let zp = args.od(2);
    if !matches!(x.dtype, DType::F32 | DType::F16 | DType::I32) {
        bail!("QuantizeLinear: x must be f32, f16 or i32, got {}", x.dtype);
    }
    super::need_float(scale, "QuantizeLinear y_scale")?;
    if let Some(z) = zp {
        if z.shape != scale.shape {
            bail!(
                "QuantizeLinear: y_zero_point {:?} must have y_scale's shape {:?}",
                z.shape,
                scale.shape
            );
        }
    }
    let out_dtype = zp.map_or(op.output_dtype, |z| z.dtype);
    qrange(out_dtype).context("QuantizeLinear")?;
    let lay = param_layout(
        &x.shape,
        &scale.shape,
        op.axis,
        op.block_size,
        "QuantizeLinear",
    )?;
    let out = k.alloc(out_dtype, x.shape.clone())?;
    dispatch_quantize(k, x, scale, zp, &out, lay, "QuantizeLinear")?;
    Ok(vec![out])
}

pub fn encode_dynamic(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "DynamicQuantizeLinear x")?;
    if x.dtype != DType::F32 {
        bail!("DynamicQuantizeLinear: x must be f32, got {}", x.dtype);
    }
    let y = k.alloc(DType::U8, x.shape.clone())?;
    let scale = k.alloc(DType::F32, vec![])?;
    let zp = k.alloc(DType::U8, vec![])?;
    let n = u32_of(x.len(), "DynamicQuantizeLinear")?;
    k.dispatch("quantize_range", &[n], &[x, &scale, &zp], [1, 1, 1])?;
    dispatch_quantize(k, x, &scale, Some(&zp), &y, [0; 5], "DynamicQuantizeLinear")?;
    Ok(vec![y, scale, zp])
}
