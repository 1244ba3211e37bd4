//! CPU kernel for com.microsoft MatMulNBits (4 bits): B is dequantized to a
//! dense f32 [K, N] matrix, then A [..., K] x B runs through MatMul in f32.
//! B is [N, blocks, block/2] bytes, low nibble first; scales [N * blocks];
//! zero points are packed 4-bit codes [N, ceil(blocks/2)] (low nibble first)
//! or floats like the scales, 8 when absent. The last block of a row is
//! zero-padded when K is not a multiple of the block.

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{MatMul, MatMulNBits};
use cellm_ir::{DType, Tensor};

/// Dense [K, N] weights from the packed codes.
pub fn dequantize(
    op: &MatMulNBits,
    b: &Tensor,
    scales: &Tensor,
    zero_points: Option<&Tensor>,
) -> Result<Vec<f32>> {
    if op.bits != 4 {
        bail!("MatMulNBits: only bits = 4 is supported, got {}", op.bits);
    }
    let (k, n, bs) = (op.k, op.n, op.block_size);
    if bs < 16 || !bs.is_power_of_two() {
        bail!("MatMulNBits: block_size {bs} must be a power of two >= 16");
    }
    let blocks = k.div_ceil(bs);
    let blob = bs / 2;
    if b.dtype() != DType::U8 || b.len() != n * blocks * blob {
        bail!(
            "MatMulNBits: B must be u8 [{n}, {blocks}, {blob}], got {} {:?}",
            b.dtype(),
            b.shape()
        );
    }
    if scales.len() != n * blocks {
        bail!(
            "MatMulNBits: scales must hold {} values (N {n} x {blocks} blocks), got {:?}",
            n * blocks,
            scales.shape()
        );
    }
    let codes = b.view::<u8>()?;
    let sv = f32_values(scales, "MatMulNBits scales")?;
    // Zero point of (row, block) as a float.
    let zps: Vec<f32> = match zero_points {
        None => vec![8.0; n * blocks],
        Some(z) if z.dtype() == DType::U8 => {
            let per_row = blocks.div_ceil(2);
            if z.len() != n * per_row {
                bail!(
                    "MatMulNBits: packed zero_points must hold {} bytes, got {:?}",
                    n * per_row,
                    z.shape()
                );
            }
            let zb = z.view::<u8>()?;
            (0..n * blocks)
                .map(|i| {
                    let (row, blk) = (i / blocks, i % blocks);
                    let byte = zb[row * per_row + blk / 2];
                    f32::from(if blk.is_multiple_of(2) {
                        byte & 0x0f
                    } else {
                        byte >> 4
                    })
                })
                .collect()
        }
        Some(z) => {
            if z.len() != n * blocks || z.dtype() != scales.dtype() {
                bail!(
                    "MatMulNBits: float zero_points must be {} [{n}, {blocks}], got {} {:?}",
                    scales.dtype(),
                    z.dtype(),
                    z.shape()
                );
            }
            f32_values(z, "MatMulNBits zero_points")?.into_owned()
        }
    };
    let mut w = vec![0f32; k * n];
    for row in 0..n {
        for blk in 0..blocks {
            let (s, zp) = (sv[row * blocks + blk], zps[row * blocks + blk]);
            let base = (row * blocks + blk) * blob;
            for j in 0..bs {
                let kk = blk * bs + j;
                if kk >= k {
                    break;
                }
                let byte = codes[base + j / 2];
                let q = if j.is_multiple_of(2) {
                    byte & 0x0f
                } else {
                    byte >> 4
                };
                w[kk * n + row] = (f32::from(q) - zp) * s;
            }
        }
    }
    Ok(w)
}

/// A [..., K] times dense f32 weights [K, N], plus an optional bias [N], in A's dtype.
pub fn matmul_dense(
    a: &Tensor,
    w: Vec<f32>,
    k: usize,
    n: usize,
    bias: Option<&Tensor>,
    what: &str,
) -> Result<Tensor> {
    if a.shape().last() != Some(&k) {
        bail!("{what}: A {:?} must end in K = {k}", a.shape());
    }
    let af = Tensor::from_vec(a.shape().to_vec(), f32_values(a, what)?.into_owned());
    let wt = Tensor::from_vec(vec![k, n], w);
    let y = super::mat_mul::run(&MatMul, &[Some(&af), Some(&wt)]).context(what.to_string())?;
    let y0 = y
        .first()
        .with_context(|| format!("{what}: matmul gave no output"))?;
    let mut v = y0.f32s()?.to_vec();
    if let Some(b) = bias {
        let bv = f32_values(b, what)?;
        if bv.len() != n {
            bail!("{what}: bias has {} values, expected N = {n}", bv.len());
        }
        v.iter_mut().enumerate().for_each(|(i, x)| *x += bv[i % n]);
    }
    f32_to_tensor(a.dtype(), y0.shape().to_vec(), v)
}

pub fn run(op: &MatMulNBits, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulNBits input A")?;
    let b = input(inputs, 1).context("MatMulNBits input B")?;
    let scales = input(inputs, 2).context("MatMulNBits input scales")?;
    if opt_input(inputs, 4).is_some() {
        bail!("MatMulNBits: g_idx (act-order) is not supported");
    }
    let w = dequantize(op, b, scales, opt_input(inputs, 3))?;
    Ok(vec![matmul_dense(
        a,
        w,
        op.k,
        op.n,
        opt_input(inputs, 5),
        "MatMulNBits",
    )?])
}
