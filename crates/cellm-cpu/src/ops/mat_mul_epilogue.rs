//! CPU kernel for MatMulEpilogue: Y = A·B (+ bias) (+ residual) with A
//! [..., M, K], B [K, N], bias [N], and a residual usually shaped like A·B
//! (others broadcast numpy-style, through the Add kernel). The product runs
//! through MatMul's GEMM (all rows of A at once: B is shared), then bias and
//! residual are added in one pass while the rows are still in cache. f16
//! weights (B) under f32 activations are widened inside the GEMM.
//! [`mat_mul_epilogue_slow`] is MatMul then Add, Add through the primitive
//! kernels (the test reference).

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use super::mat_mul::weight_gemm;
use crate::par;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{Binary, BinaryOp, MatMul, MatMulEpilogue};
use cellm_ir::{DType, Op, Tensor};

pub fn run(_op: &MatMulEpilogue, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulEpilogue input A")?;
    let b = input(inputs, 1).context("MatMulEpilogue input B")?;
    let bias = opt_input(inputs, 2);
    let residual = opt_input(inputs, 3);
    let dtype = a.dtype();
    if !matches!(dtype, DType::F32 | DType::F16) {
        // f64 and the rest: the primitive kernels define the result.
        return Ok(vec![mat_mul_epilogue_slow(a, b, bias, residual)?]);
    }
    // f16 weights under f32 activations are read as halves inside the GEMM.
    let f16_weights = dtype == DType::F32 && b.dtype() == DType::F16;
    if b.dtype() != dtype && !f16_weights {
        bail!("MatMulEpilogue: A is {dtype} but B is {}", b.dtype());
    }
    for (t, what) in [(bias, "bias"), (residual, "residual")] {
        if let Some(t) = t {
            if t.dtype() != dtype {
                bail!("MatMulEpilogue: A is {dtype} but {what} is {}", t.dtype());
            }
        }
    }
    let (&k, lead) = a
        .shape()
        .split_last()
        .filter(|(_, lead)| !lead.is_empty())
        .with_context(|| format!("MatMulEpilogue: A must have rank >= 2, got {:?}", a.shape()))?;
    let [kb, n] = *b.shape() else {
        bail!("MatMulEpilogue: B must be 2-D, got {:?}", b.shape());
    };
    if kb != k {
        bail!(
            "MatMulEpilogue: inner dims differ: A {:?} x B {:?}",
            a.shape(),
            b.shape()
        );
    }
    let rows: usize = lead.iter().product();
    let mut out_shape = lead.to_vec();
    out_shape.push(n);
    if let Some(t) = bias {
        if t.shape() != [n] {
            bail!("MatMulEpilogue: bias must be [{n}], got {:?}", t.shape());
        }
    }
    // A residual of another shape broadcasts: the Add kernel adds it after.
    let (residual, broadcast_residual) = match residual {
        Some(t) if t.shape() != out_shape.as_slice() => (None, Some(t)),
        r => (r, None),
    };
    let av = f32_values(a, "MatMulEpilogue A")?;
    let bias_v = bias
        .map(|t| f32_values(t, "MatMulEpilogue bias"))
        .transpose()?;
    let res_v = residual
        .map(|t| f32_values(t, "MatMulEpilogue residual"))
        .transpose()?;
    let mut y = vec![0f32; rows * n];
    weight_gemm(rows, k, n, &av, b, &mut y, "MatMulEpilogue B")?;
    if n > 0 && (bias_v.is_some() || res_v.is_some()) {
        par::for_rows_mut(&mut y, n, n, |row0, chunk| {
            for (r, yr) in chunk.chunks_exact_mut(n).enumerate() {
                if let Some(bv) = &bias_v {
                    yr.iter_mut().zip(bv.iter()).for_each(|(y, b)| *y += b);
                }
                if let Some(rv) = &res_v {
                    let rr = &rv[(row0 + r) * n..(row0 + r + 1) * n];
                    yr.iter_mut().zip(rr).for_each(|(y, r)| *y += r);
                }
            }
        });
    }
    let y = f32_to_tensor(dtype, out_shape, y)?;
    match broadcast_residual {
        Some(r) => Ok(vec![super::eval(
            &Op::Binary(Binary { op: BinaryOp::Add }),
            &[Some(&y), Some(r)],
        )
        .context("MatMulEpilogue residual")?
        .remove(0)]),
        None => Ok(vec![y]),
    }
}

/// MatMul, then Add(bias), then Add(residual), each a primitive kernel.
pub fn mat_mul_epilogue_slow(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    let add = |x: Tensor, y: &Tensor| -> Result<Tensor> {
        super::eval(
            &Op::Binary(Binary { op: BinaryOp::Add }),
            &[Some(&x), Some(y)],
        )?
        .pop()
        .context("Add output")
    };
    // f16 weights: the product of A with B's values widened to f32.
    let b32;
    let b = if a.dtype() == DType::F32 && b.dtype() == DType::F16 {
        b32 = Tensor::from_vec(b.shape().to_vec(), b.to_f32_vec()?);
        &b32
    } else {
        b
    };
    let mut y = super::eval(&Op::MatMul(MatMul), &[Some(a), Some(b)])?
        .pop()
        .context("MatMul output")?;
    if let Some(t) = bias {
        y = add(y, t)?;
    }
    if let Some(t) = residual {
        y = add(y, t)?;
    }
    Ok(y)
}
