//! com.microsoft MatMulNBits (4-bit): the packed codes stay packed on the
//! device (u8 tensors are byte-stored) and are dequantized in registers by
//! `shaders/mat_mul_n_bits_gemv.wgsl` (up to `GEMV_ROWS` rows of A: decode)
//! or `shaders/mat_mul_n_bits.wgsl` (64x64 tiles: prefill, vision).

use super::{infer_shapes, need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::MatMulNBits;
use cellm_ir::{DType, Op};

/// Rows of A up to which the GEMV kernel (one pass over B per row) beats
/// 64-row tiles that would mostly compute padding.
pub const GEMV_ROWS: usize = 4;

/// Whether the device kernels take this node: 4-bit codes, power-of-two
/// blocks >= 16, no g_idx, and the dtypes the kernels read.
pub fn supported(op: &MatMulNBits, args: &Args) -> bool {
    let float =
        |t: Option<&DevTensor>| t.is_some_and(|t| matches!(t.dtype, DType::F32 | DType::F16));
    op.bits == 4
        && op.block_size >= 16
        && op.block_size.is_power_of_two()
        && float(args.od(0))
        && args.od(1).is_some_and(|b| b.dtype == DType::U8)
        && float(args.od(2))
        && args
            .od(3)
            .is_none_or(|z| z.dtype == DType::U8 || Some(z.dtype) == args.od(2).map(|s| s.dtype))
        && args.od(4).is_none()
        && args
            .od(5)
            .is_none_or(|b| matches!(b.dtype, DType::F32 | DType::F16))
}

pub fn encode(k: &mut Kern, op: &MatMulNBits, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulNBits A")?;
    let b = args.d(1, "MatMulNBits B")?;
    let scales = args.d(2, "MatMulNBits scales")?;
    let zp = args.od(3);
    let bias = args.od(5);
    need_float(a, "MatMulNBits A")?;
    need_float(scales, "MatMulNBits scales")?;
    if op.bits != 4 {
        bail!(
            "MatMulNBits: only bits = 4 runs on the GPU, got {}",
            op.bits
        );
    }
    if args.od(4).is_some() {
        bail!("MatMulNBits: g_idx (act-order) is not supported");
    }
    let (kd, n, bs) = (op.k, op.n, op.block_size);
    if bs < 16 || !bs.is_power_of_two() {
        bail!("MatMulNBits: block_size {bs} must be a power of two >= 16");
    }
    let blocks = kd.div_ceil(bs);
    let blob = bs / 2;
    if b.dtype != DType::U8 || b.len() != n * blocks * blob {
        bail!(
            "MatMulNBits: B must be u8 [{n}, {blocks}, {blob}], got {} {:?}",
            b.dtype,
            b.shape
        );
    }
    if scales.len() != n * blocks {
        bail!(
            "MatMulNBits: scales must hold {} values (N {n} x {blocks} blocks), got {:?}",
            n * blocks,
            scales.shape
        );
    }
    let zp_bytes = blocks.div_ceil(2);
    let zp_mode = match zp {
        None => 0u32,
        Some(z) if z.dtype == DType::U8 => {
            if z.len() != n * zp_bytes {
                bail!(
                    "MatMulNBits: packed zero_points must hold {} bytes, got {:?}",
                    n * zp_bytes,
                    z.shape
                );
            }
            1
        }
        Some(z) => {
            if z.len() != n * blocks || z.dtype != scales.dtype {
                bail!(
                    "MatMulNBits: float zero_points must be {} [{n}, {blocks}], got {} {:?}",
                    scales.dtype,
                    z.dtype,
                    z.shape
                );
            }
            2
        }
    };
    if let Some(bv) = bias {
        need_float(bv, "MatMulNBits bias")?;
        if bv.len() != n {
            bail!(
                "MatMulNBits: bias has {} values, expected N = {n}",
                bv.len()
            );
        }
    }
    if a.shape.last() != Some(&kd) {
        bail!("MatMulNBits: A {:?} must end in K = {kd}", a.shape);
    }
    let (dtype, shape) = infer_shapes(&Op::MatMulNBits(op.clone()), args)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("MatMulNBits: no output shape"))?;
    let out = k.alloc(dtype, shape)?;
    let m = a.len() / kd.max(1);
    if out.is_empty() {
        return Ok(vec![out]);
    }
    if kd == 0 {
        bail!("MatMulNBits: K = 0 is not supported on the GPU");
    }
    let gemv = m <= GEMV_ROWS;
    let tiles = if gemv { n.div_ceil(8) } else { n.div_ceil(64) };
    let groups = if gemv {
        tiles * m
    } else {
        tiles * m.div_ceil(64)
    };
    let p = [
        u32_of(m, "MatMulNBits M")?,
        u32_of(n, "MatMulNBits N")?,
        u32_of(kd, "MatMulNBits K")?,
        u32_of(bs, "MatMulNBits block_size")?,
        u32_of(blocks, "MatMulNBits blocks")?,
        zp_mode,
        u32::from(bias.is_some()),
        u32_of(tiles, "MatMulNBits")?,
        u32_of(blocks * bs / 8, "MatMulNBits")?,
        u32_of(zp_bytes, "MatMulNBits")?,
    ];
    // Absent optional inputs bind a read-only stand-in the kernel never reads.
    let zp_buf = zp.unwrap_or(scales);
    let bias_buf = bias.unwrap_or(scales);
    let shader = if gemv {
        "mat_mul_n_bits_gemv"
    } else {
        "mat_mul_n_bits"
    };
    k.dispatch_groups(shader, &p, &[a, b, scales, zp_buf, bias_buf, &out], groups)?;
    Ok(vec![out])
}
