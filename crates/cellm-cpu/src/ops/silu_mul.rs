//! CPU kernel for SiluMul: gate·sigmoid(gate)·up (inputs broadcast numpy-
//! style). f32 with equal shapes runs the vectorised kernel over all cores;
//! other shapes and dtypes go through f32 elementwise. [`silu_mul_slow`] is
//! the same function from the primitive kernels (the test reference).

use super::common::{broadcast_map2, f32_to_tensor, f32_values, input};
use crate::{par, vmath};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{Binary, BinaryOp, SiluMul, Unary, UnaryOp};
use cellm_ir::{DType, Op, Tensor};

/// Work units per element (a polynomial exp and a division).
const COST: usize = 8;

pub fn run(_op: &SiluMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let gate = input(inputs, 0).context("SiluMul input gate")?;
    let up = input(inputs, 1).context("SiluMul input up")?;
    if gate.dtype() != up.dtype() {
        bail!("SiluMul: gate is {} but up is {}", gate.dtype(), up.dtype());
    }
    let out = match gate.dtype() {
        DType::F32 | DType::F16 => {
            let g = f32_values(gate, "SiluMul gate")?;
            let u = f32_values(up, "SiluMul up")?;
            let (shape, y) = if gate.shape() == up.shape() {
                (gate.shape().to_vec(), silu_mul_f32(&g, &u))
            } else {
                broadcast_map2(&g, gate.shape(), &u, up.shape(), |g, u| {
                    g * u * vmath::sigmoid(g)
                })
                .context("SiluMul: gate and up")?
            };
            f32_to_tensor(gate.dtype(), shape, y)?
        }
        DType::F64 => {
            let (shape, y) = broadcast_map2(
                gate.view::<f64>()?,
                gate.shape(),
                up.view::<f64>()?,
                up.shape(),
                |g, u| g * u / (1.0 + (-g).exp()),
            )
            .context("SiluMul: gate and up")?;
            Tensor::from_vec(shape, y)
        }
        other => bail!("SiluMul: inputs must be float tensors, got {other}"),
    };
    Ok(vec![out])
}

/// gate·sigmoid(gate)·up of equal-length f32 slices, over all cores when large.
pub fn silu_mul_f32(gate: &[f32], up: &[f32]) -> Vec<f32> {
    par::fill_vec(gate.len(), COST, |off, y| {
        let n = y.len();
        vmath::silu_mul_slice(&gate[off..off + n], &up[off..off + n], y)
    })
}

/// Mul(Mul(gate, Sigmoid(gate)), up) through the primitive kernels.
pub fn silu_mul_slow(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let mul = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
        super::eval(
            &Op::Binary(Binary { op: BinaryOp::Mul }),
            &[Some(a), Some(b)],
        )?
        .pop()
        .context("Mul output")
    };
    let sig = super::eval(
        &Op::Unary(Unary {
            op: UnaryOp::Sigmoid,
        }),
        &[Some(gate)],
    )?
    .pop()
    .context("Sigmoid output")?;
    mul(&mul(gate, &sig)?, up)
}
