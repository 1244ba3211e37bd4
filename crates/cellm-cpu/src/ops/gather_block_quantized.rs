//! CPU kernel for com.microsoft GatherBlockQuantized: the whole table is
//! dequantized to f32 (codes two per byte along the last axis, low nibble
//! first; zero points packed the same way, 8 when absent), then gathered.

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{Gather, GatherBlockQuantized};
use cellm_ir::shape::normalize_axis;
use cellm_ir::{DType, Tensor};

pub fn run(op: &GatherBlockQuantized, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let data = input(inputs, 0).context("GatherBlockQuantized input data")?;
    let indices = input(inputs, 1).context("GatherBlockQuantized input indices")?;
    let scales = input(inputs, 2).context("GatherBlockQuantized input scales")?;
    let zero_points = opt_input(inputs, 3);
    if op.bits != 4 || data.dtype() != DType::U8 {
        bail!(
            "GatherBlockQuantized: only 4-bit codes packed in u8 are supported (bits {}, data {})",
            op.bits,
            data.dtype()
        );
    }
    let rank = data.rank();
    if rank == 0 || normalize_axis(op.quantize_axis, rank)? != rank - 1 {
        bail!(
            "GatherBlockQuantized: quantize_axis {} must be the last axis of data {:?}",
            op.quantize_axis,
            data.shape()
        );
    }
    let bs = op.block_size;
    if bs < 16 || !bs.is_power_of_two() {
        bail!("GatherBlockQuantized: block_size {bs} must be a power of two >= 16");
    }
    let k = 2 * data.shape()[rank - 1];
    let rows = data.len() * 2 / k.max(1);
    let blocks = k.div_ceil(bs);
    let mut sshape = data.shape().to_vec();
    sshape[rank - 1] = blocks;
    if scales.shape() != sshape.as_slice() {
        bail!(
            "GatherBlockQuantized: scales {:?} must be {sshape:?}",
            scales.shape()
        );
    }
    let sv = f32_values(scales, "GatherBlockQuantized scales")?;
    let zb = match zero_points {
        Some(z) => {
            let per_row = blocks.div_ceil(2);
            if z.dtype() != DType::U8 || z.len() != rows * per_row {
                bail!(
                    "GatherBlockQuantized: zero_points must be u8 with {} packed values, got {} {:?}",
                    rows * per_row,
                    z.dtype(),
                    z.shape()
                );
            }
            Some((z.view::<u8>()?, per_row))
        }
        None => None,
    };
    let codes = data.view::<u8>()?;
    let mut table = vec![0f32; rows * k];
    for row in 0..rows {
        for kk in 0..k {
            let byte = codes[(row * k + kk) / 2];
            let q = if kk.is_multiple_of(2) {
                byte & 0x0f
            } else {
                byte >> 4
            };
            let blk = kk / bs;
            let zp = match zb {
                Some((z, per_row)) => {
                    let zbyte = z[row * per_row + blk / 2];
                    if blk.is_multiple_of(2) {
                        zbyte & 0x0f
                    } else {
                        zbyte >> 4
                    }
                }
                None => 8,
            };
            table[row * k + kk] = (f32::from(q) - f32::from(zp)) * sv[row * blocks + blk];
        }
    }
    let mut tshape = data.shape().to_vec();
    tshape[rank - 1] = k;
    let table = Tensor::from_vec(tshape, table);
    let out = super::gather::run(
        &Gather {
            axis: op.gather_axis,
        },
        &[Some(&table), Some(indices)],
    )
    .context("GatherBlockQuantized")?;
    let y = out
        .first()
        .context("GatherBlockQuantized: gather gave no output")?;
    Ok(vec![f32_to_tensor(
        scales.dtype(),
        y.shape().to_vec(),
        y.f32s()?.to_vec(),
    )?])
}
