//! CPU kernel for MatMulMulti: Y_i = A·B_i for each 2-D weight B_i [K, N_i]
//! (A [..., M, K]). A is read (and widened to f32) once; each product runs
//! through MatMul's GEMM (f16 weights under f32 A read as halves inside it).
//! [`mat_mul_multi_slow`] is one primitive MatMul per weight (the test
//! reference). [`weight_product`] is shared with MatMulSiluMul.

use super::common::{f32_to_tensor, f32_values, input};
use super::mat_mul::weight_gemm;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{MatMul, MatMulMulti};
use cellm_ir::{DType, Op, Tensor};

/// Rows and K of A [..., M, K] (rank >= 2), or an error naming `what`.
pub fn rows_and_k(a: &Tensor, what: &str) -> Result<(usize, usize)> {
    let (&k, lead) = a
        .shape()
        .split_last()
        .filter(|(_, lead)| !lead.is_empty())
        .with_context(|| format!("{what}: A must have rank >= 2, got {:?}", a.shape()))?;
    Ok((lead.iter().product(), k))
}

/// A·B in f32 for A's f32 values `av` ([rows, k]) and a 2-D weight `b` of
/// A's dtype (or f16 under f32 A): (N, rows·N values).
pub fn weight_product(
    av: &[f32],
    rows: usize,
    k: usize,
    a_dtype: DType,
    b: &Tensor,
    what: &str,
) -> Result<(usize, Vec<f32>)> {
    let f16_weights = a_dtype == DType::F32 && b.dtype() == DType::F16;
    if b.dtype() != a_dtype && !f16_weights {
        bail!("{what}: A is {a_dtype} but the weight is {}", b.dtype());
    }
    let [kb, n] = *b.shape() else {
        bail!("{what}: weight must be 2-D, got {:?}", b.shape());
    };
    if kb != k {
        bail!("{what}: A has K = {k} but the weight is {:?}", b.shape());
    }
    let mut y = vec![0f32; rows * n];
    weight_gemm(rows, k, n, av, b, &mut y, what)?;
    Ok((n, y))
}

pub fn run(_op: &MatMulMulti, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulMulti input A")?;
    let bs = (1..inputs.len().max(2))
        .map(|i| input(inputs, i).with_context(|| format!("MatMulMulti weight {}", i - 1)))
        .collect::<Result<Vec<_>>>()?;
    let dtype = a.dtype();
    if !matches!(dtype, DType::F32 | DType::F16) {
        // f64 and the rest: the primitive kernels define the result.
        return mat_mul_multi_slow(a, &bs);
    }
    let (rows, k) = rows_and_k(a, "MatMulMulti")?;
    let av = f32_values(a, "MatMulMulti A")?;
    let lead = &a.shape()[..a.shape().len() - 1];
    bs.iter()
        .enumerate()
        .map(|(i, b)| {
            let what = format!("MatMulMulti weight {i}");
            let (n, y) = weight_product(&av, rows, k, dtype, b, &what)?;
            let mut shape = lead.to_vec();
            shape.push(n);
            f32_to_tensor(dtype, shape, y)
        })
        .collect()
}

/// One primitive MatMul per weight (f16 weights widened to f32 first).
pub fn mat_mul_multi_slow(a: &Tensor, bs: &[&Tensor]) -> Result<Vec<Tensor>> {
    bs.iter()
        .map(|b| {
            let b32;
            let b = if a.dtype() == DType::F32 && b.dtype() == DType::F16 {
                b32 = Tensor::from_vec(b.shape().to_vec(), b.to_f32_vec()?);
                &b32
            } else {
                b
            };
            super::eval(&Op::MatMul(MatMul), &[Some(a), Some(b)])?
                .pop()
                .context("MatMul output")
        })
        .collect()
}
