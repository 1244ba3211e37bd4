//! CPU kernel for com.microsoft MatMulBnb4: B (logical [N, K], row-major) is
//! stored as 4-bit codes, two per byte with the first element in the high
//! nibble (bitsandbytes order), one absmax per `block_size` elements of the
//! flattened B. Codes map through the FP4 or NF4 table, times absmax.

use super::common::{f32_values, input};
use super::mat_mul_n_bits::matmul_dense;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MatMulBnb4;
use cellm_ir::{DType, Tensor};

/// Dense [K, N] weights from the packed codes.
pub fn dequantize(op: &MatMulBnb4, b: &Tensor, absmax: &Tensor) -> Result<Vec<f32>> {
    let (k, n, bs) = (op.k, op.n, op.block_size);
    if bs == 0 {
        bail!("MatMulBnb4: block_size must be > 0");
    }
    let total = n * k;
    if b.dtype() != DType::U8 || b.len() != total.div_ceil(2) {
        bail!(
            "MatMulBnb4: B must be u8 with {} bytes, got {} {:?}",
            total.div_ceil(2),
            b.dtype(),
            b.shape()
        );
    }
    if absmax.len() != total.div_ceil(bs) {
        bail!(
            "MatMulBnb4: absmax must hold {} values, got {:?}",
            total.div_ceil(bs),
            absmax.shape()
        );
    }
    let table = op.quant_type.code_book();
    let codes = b.view::<u8>()?;
    let am = f32_values(absmax, "MatMulBnb4 absmax")?;
    let mut w = vec![0f32; total];
    for i in 0..total {
        let byte = codes[i / 2];
        let q = if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0x0f
        };
        let (row, col) = (i / k, i % k);
        w[col * n + row] = table[q as usize] * am[i / bs];
    }
    Ok(w)
}

pub fn run(op: &MatMulBnb4, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulBnb4 input A")?;
    let b = input(inputs, 1).context("MatMulBnb4 input B")?;
    let absmax = input(inputs, 2).context("MatMulBnb4 input absmax")?;
    let w = dequantize(op, b, absmax)?;
    Ok(vec![matmul_dense(a, w, op.k, op.n, None, "MatMulBnb4")?])
}
