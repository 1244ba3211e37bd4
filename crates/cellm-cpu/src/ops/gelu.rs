//! CPU kernel for Gelu (exact erf form or tanh approximation). f32 runs the
//! vectorised polynomial kernels of `vmath` over all cores; f16 goes through
//! f32 (rounded once); f64 uses libm. [`gelu_slow`] builds the same function
//! from the primitive kernels, as the reference for tests of this kernel and
//! of the fusion pass.

use super::common::{f32_to_tensor, input};
use crate::{par, vmath};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{Binary, BinaryOp, Gelu, GeluApproximation, Unary, UnaryOp};
use cellm_ir::{DType, Op, Tensor};

/// Work units per element (a polynomial exp and a division).
const COST: usize = 8;

pub fn run(op: &Gelu, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("Gelu input X")?;
    let shape = x.shape().to_vec();
    let out = match x.dtype() {
        DType::F32 => Tensor::from_vec(shape, gelu_f32(op.approximate, x.f32s()?)),
        DType::F16 => {
            let v = x.to_f32_vec().context("Gelu input X")?;
            f32_to_tensor(DType::F16, shape, gelu_f32(op.approximate, &v))?
        }
        DType::F64 => {
            let f: fn(f64) -> f64 = match op.approximate {
                GeluApproximation::None => {
                    |v| 0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2))
                }
                GeluApproximation::Tanh => |v| {
                    let u = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
                    0.5 * v * (1.0 + u.tanh())
                },
            };
            Tensor::from_vec(shape, x.view::<f64>()?.iter().map(|&v| f(v)).collect())
        }
        other => bail!("Gelu: input X must be a float tensor, got {other}"),
    };
    Ok(vec![out])
}

/// GELU of f32 values, over all cores for large inputs.
pub fn gelu_f32(approximate: GeluApproximation, x: &[f32]) -> Vec<f32> {
    par::fill_vec(x.len(), COST, |off, y| {
        let xs = &x[off..off + y.len()];
        match approximate {
            GeluApproximation::None => vmath::gelu_erf_slice(xs, y),
            GeluApproximation::Tanh => vmath::gelu_tanh_slice(xs, y),
        }
    })
}

/// The same function composed of the primitive kernels (Mul, Add, Div, Erf,
/// Tanh) in the order the ONNX exporters write it; the test reference.
pub fn gelu_slow(approximate: GeluApproximation, x: &Tensor) -> Result<Tensor> {
    let c = |v: f64| -> Result<Tensor> {
        Ok(match x.dtype() {
            DType::F64 => Tensor::scalar(v),
            dt => f32_to_tensor(dt, vec![], vec![v as f32])?,
        })
    };
    let bin = |op: BinaryOp, a: &Tensor, b: &Tensor| -> Result<Tensor> {
        super::eval(&Op::Binary(Binary { op }), &[Some(a), Some(b)])?
            .pop()
            .context("binary output")
    };
    let un = |op: UnaryOp, a: &Tensor| -> Result<Tensor> {
        super::eval(&Op::Unary(Unary { op }), &[Some(a)])?
            .pop()
            .context("unary output")
    };
    let inner = match approximate {
        GeluApproximation::None => un(
            UnaryOp::Erf,
            &bin(BinaryOp::Div, x, &c(std::f64::consts::SQRT_2)?)?,
        )?,
        GeluApproximation::Tanh => {
            let cube = bin(BinaryOp::Mul, x, &bin(BinaryOp::Mul, x, x)?)?;
            let sum = bin(BinaryOp::Add, x, &bin(BinaryOp::Mul, &c(0.044715)?, &cube)?)?;
            let scale = (2.0 / std::f64::consts::PI).sqrt();
            un(UnaryOp::Tanh, &bin(BinaryOp::Mul, &c(scale)?, &sum)?)?
        }
    };
    let half_x = bin(BinaryOp::Mul, x, &c(0.5)?)?;
    bin(
        BinaryOp::Mul,
        &half_x,
        &bin(BinaryOp::Add, &c(1.0)?, &inner)?,
    )
}
