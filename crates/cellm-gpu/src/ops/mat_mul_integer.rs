//! MatMulInteger with a 2-D B (the weight): u8/i8 operands stay byte-stored
//! on the device; `shaders/mat_mul_integer_gemv.wgsl` for a few rows of A
//! (decode), `shaders/mat_mul_integer.wgsl` (64x64 tiles) otherwise.

use super::mat_mul_n_bits::GEMV_ROWS;
use super::{infer_shapes, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::MatMulInteger;
use cellm_ir::{DType, Op};

fn is8(t: Option<&DevTensor>) -> bool {
    t.is_some_and(|t| matches!(t.dtype, DType::U8 | DType::I8))
}

/// B must be a matrix (a weight); batched B, and a 1-D A with a per-element
/// zero point, stay on the host.
pub fn supported(args: &Args) -> bool {
    is8(args.od(0))
        && is8(args.od(1))
        && args.od(0).is_some_and(|a| {
            a.shape.len() >= 2 || (a.shape.len() == 1 && args.od(2).is_none_or(|z| z.len() == 1))
        })
        && args.od(1).is_some_and(|b| b.shape.len() == 2)
}

/// Zero-point mode: 0 none, 1 one value, 2 one per index of a dim of `len`.
fn zp_mode(zp: Option<&DevTensor>, operand: &DevTensor, len: usize, what: &str) -> Result<u32> {
    let Some(z) = zp else { return Ok(0) };
    if z.dtype != operand.dtype {
        bail!(
            "MatMulInteger: {what} is {} but the operand is {}",
            z.dtype,
            operand.dtype
        );
    }
    match z.len() {
        1 => Ok(1),
        l if l == len => Ok(2),
        l => bail!("MatMulInteger: {what} has {l} values, expected 1 or {len}"),
    }
}

pub fn encode(k: &mut Kern, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulInteger A")?;
    let b = args.d(1, "MatMulInteger B")?;
    if b.shape.len() != 2 || a.shape.is_empty() {
        bail!(
            "MatMulInteger: the GPU takes A of rank >= 1 and a 2-D B, got A {:?}, B {:?}",
            a.shape,
            b.shape
        );
    }
    let (kd, n) = (b.shape[0], b.shape[1]);
    if a.shape.last() != Some(&kd) {
        bail!(
            "MatMulInteger: inner dims differ: A {:?} vs B {:?}",
            a.shape,
            b.shape
        );
    }
    let m_dim = if a.shape.len() >= 2 {
        a.shape[a.shape.len() - 2]
    } else {
        1
    };
    let az = zp_mode(args.od(2), a, m_dim, "a_zero_point")?;
    let bz = zp_mode(args.od(3), b, n, "b_zero_point")?;
    let (dtype, shape) = infer_shapes(&Op::MatMulInteger(MatMulInteger), args)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("MatMulInteger: no output shape"))?;
    let out = k.alloc(dtype, shape)?;
    if out.is_empty() {
        return Ok(vec![out]);
    }
    if kd == 0 {
        k.clear(&out);
        return Ok(vec![out]);
    }
    let rows = a.len() / kd;
    let gemv = rows <= GEMV_ROWS;
    let tiles = n.div_ceil(64);
    let groups = if gemv {
        tiles * rows
    } else {
        tiles * rows.div_ceil(64)
    };
    let p = [
        u32_of(rows, "MatMulInteger rows")?,
        u32_of(n, "MatMulInteger N")?,
        u32_of(kd, "MatMulInteger K")?,
        u32_of(m_dim, "MatMulInteger M")?,
        az,
        bz,
        u32_of(tiles, "MatMulInteger")?,
    ];
    // Absent zero points bind a read-only stand-in the kernel never reads.
    let azp = args.od(2).unwrap_or(a);
    let bzp = args.od(3).unwrap_or(b);
    let shader = if gemv {
        "mat_mul_integer_gemv"
    } else {
        "mat_mul_integer"
    };
    k.dispatch_groups(shader, &p, &[a, b, azp, bzp, &out], groups)?;
    Ok(vec![out])
}
