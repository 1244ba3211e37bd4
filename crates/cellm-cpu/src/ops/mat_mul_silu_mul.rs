//! CPU kernel for MatMulSiluMul: Y = silu(A·Wg)·(A·Wu). Both products run
//! through MatMul's GEMM in f32 (A widened once; f16 weights read as halves),
//! then the activation runs over them with SiluMul's vectorised kernel, and
//! f16 results round once. [`mat_mul_silu_mul_slow`] is MatMul, MatMul and
//! the Sigmoid/Mul chain from the primitive kernels (the test reference).

use super::common::{f32_to_tensor, f32_values, input};
use super::mat_mul_multi::{mat_mul_multi_slow, rows_and_k, weight_product};
use super::silu_mul::{silu_mul_f32, silu_mul_slow};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MatMulSiluMul;
use cellm_ir::{DType, Tensor};

pub fn run(_op: &MatMulSiluMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulSiluMul input A")?;
    let wg = input(inputs, 1).context("MatMulSiluMul input gate weight")?;
    let wu = input(inputs, 2).context("MatMulSiluMul input up weight")?;
    let dtype = a.dtype();
    if !matches!(dtype, DType::F32 | DType::F16) {
        return Ok(vec![mat_mul_silu_mul_slow(a, wg, wu)?]);
    }
    if wg.shape() != wu.shape() {
        bail!(
            "MatMulSiluMul: gate weight {:?} and up weight {:?} differ",
            wg.shape(),
            wu.shape()
        );
    }
    let (rows, k) = rows_and_k(a, "MatMulSiluMul")?;
    let av = f32_values(a, "MatMulSiluMul A")?;
    let (n, g) = weight_product(&av, rows, k, dtype, wg, "MatMulSiluMul gate weight")?;
    let (_, u) = weight_product(&av, rows, k, dtype, wu, "MatMulSiluMul up weight")?;
    let mut shape = a.shape()[..a.shape().len() - 1].to_vec();
    shape.push(n);
    Ok(vec![f32_to_tensor(dtype, shape, silu_mul_f32(&g, &u))?])
}

/// MatMul(A, Wg), MatMul(A, Wu), then Mul(Mul(g, Sigmoid(g)), u), each a
/// primitive kernel.
pub fn mat_mul_silu_mul_slow(a: &Tensor, wg: &Tensor, wu: &Tensor) -> Result<Tensor> {
    let p = mat_mul_multi_slow(a, &[wg, wu])?;
    silu_mul_slow(&p[0], &p[1])
}
