//! com.microsoft GatherBlockQuantized (4-bit codes along the last axis):
//! `shaders/gather_block_quantized.wgsl` decodes only the gathered rows, so
//! the table stays packed on the device.

use super::{infer_shapes, u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern, Word};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::GatherBlockQuantized;
use cellm_ir::shape::normalize_axis;
use cellm_ir::{DType, Op};

pub fn supported(op: &GatherBlockQuantized, args: &Args) -> bool {
    let Some(data) = args.od(0) else { return false };
    let rank = data.shape.len();
    op.bits == 4
        && data.dtype == DType::U8
        && rank > 0
        && normalize_axis(op.quantize_axis, rank).ok() == Some(rank - 1)
        && op.block_size >= 16
        && op.block_size.is_power_of_two()
        && args
            .od(1)
            .is_some_and(|i| word_of(i.dtype).ok() == Some(Word::I32))
        && args
            .od(2)
            .is_some_and(|s| matches!(s.dtype, DType::F32 | DType::F16))
        && args.od(3).is_none_or(|z| z.dtype == DType::U8)
}

pub fn encode(k: &mut Kern, op: &GatherBlockQuantized, args: &Args) -> Result<Vec<DevTensor>> {
    let data = args.d(0, "GatherBlockQuantized data")?;
    let idx = args.d(1, "GatherBlockQuantized indices")?;
    let scales = args.d(2, "GatherBlockQuantized scales")?;
    let zp = args.od(3);
    if !supported(op, args) {
        bail!(
            "GatherBlockQuantized: the GPU takes 4-bit u8 codes quantized along the last axis with power-of-two blocks >= 16 (bits {}, data {} {:?}, quantize_axis {}, block_size {})",
            op.bits,
            data.dtype,
            data.shape,
            op.quantize_axis,
            op.block_size
        );
    }
    let rank = data.shape.len();
    let kdim = 2 * data.shape[rank - 1];
    let rows = data.len() * 2 / kdim.max(1);
    let bs = op.block_size;
    let blocks = kdim.div_ceil(bs);
    let mut sshape = data.shape.clone();
    sshape[rank - 1] = blocks;
    if scales.shape != sshape {
        bail!(
            "GatherBlockQuantized: scales {:?} must be {sshape:?}",
            scales.shape
        );
    }
    let zp_bytes = blocks.div_ceil(2);
    if let Some(z) = zp {
        if z.len() != rows * zp_bytes {
            bail!(
                "GatherBlockQuantized: zero_points must hold {} packed values, got {:?}",
                rows * zp_bytes,
                z.shape
            );
        }
    }
    let mut table = data.shape.clone();
    table[rank - 1] = kdim;
    let axis = normalize_axis(op.gather_axis, rank)?;
    let inner: usize = table[axis + 1..].iter().product();
    let (dtype, shape) = infer_shapes(&Op::GatherBlockQuantized(op.clone()), args)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("GatherBlockQuantized: no output shape"))?;
    let out = k.alloc(dtype, shape)?;
    let n = out.len();
    let p = [
        u32_of(n, "GatherBlockQuantized")?,
        u32_of(table[axis], "GatherBlockQuantized axis")?,
        u32_of(inner, "GatherBlockQuantized")?,
        u32_of(idx.len(), "GatherBlockQuantized")?,
        u32_of(kdim, "GatherBlockQuantized K")?,
        u32_of(bs, "GatherBlockQuantized block_size")?,
        u32_of(blocks, "GatherBlockQuantized")?,
        u32::from(zp.is_some()),
        u32_of(zp_bytes, "GatherBlockQuantized")?,
    ];
    // An absent zero point binds a read-only stand-in the kernel never reads.
    k.dispatch_1d(
        "gather_block_quantized",
        &p,
        &[data, idx, scales, zp.unwrap_or(data), &out],
        n,
    )?;
    Ok(vec![out])
}
