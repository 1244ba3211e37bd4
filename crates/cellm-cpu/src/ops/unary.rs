//! CPU kernel for the elementwise unary ops. Float ops run on f32/f64 natively
//! and on f16 through f32 (rounded back once); Neg/Abs/Relu also take ints.
//! Large f32 inputs are split over the cores.

use super::common::{input, pod_view, tensor_from_pod};
use anyhow::{bail, Result};
use cellm_ir::ops::{Unary, UnaryOp};
use cellm_ir::{DType, Tensor};
use half::f16;

/// Logistic function that neither overflows nor loses precision for large |x|.
macro_rules! sigmoid {
    ($x:expr) => {{
        let x = $x;
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }};
}

fn f32_fn(op: UnaryOp) -> Result<fn(f32) -> f32> {
    Ok(match op {
        UnaryOp::Identity => |x| x,
        UnaryOp::Neg => |x| -x,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Reciprocal => |x| 1.0 / x,
        UnaryOp::Sigmoid => |x| sigmoid!(x),
        UnaryOp::Tanh => f32::tanh,
        UnaryOp::Cos => f32::cos,
        UnaryOp::Sin => f32::sin,
        UnaryOp::Exp => f32::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Abs => f32::abs,
        // max(x, 0) would turn NaN into 0; ONNX Relu keeps NaN.
        UnaryOp::Relu => |x| if x < 0.0 { 0.0 } else { x },
        UnaryOp::Erf => libm::erff,
        UnaryOp::Not => bail!("Not takes a bool tensor, not a float one"),
    })
}

/// Work units per element of each f32 op (transcendental functions cost
/// ~10 cheap ops), for the threading threshold.
fn cost(op: UnaryOp) -> usize {
    match op {
        UnaryOp::Identity | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu => 1,
        UnaryOp::Sqrt | UnaryOp::Reciprocal => 2,
        _ => 10,
    }
}

/// `op` over f32 values: one monomorphised (inlinable, vectorisable where the
/// function allows) loop per op, split over the cores for large inputs. The
/// functions are the same libm ones as the scalar path.
fn map_f32(op: UnaryOp, x: &[f32]) -> Result<Vec<f32>> {
    fn go(x: &[f32], cost: usize, f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
        crate::par::fill_vec(x.len(), cost, |off, y| {
            let xs = &x[off..off + y.len()];
            for (o, &v) in y.iter_mut().zip(xs) {
                *o = f(v);
            }
        })
    }
    let c = cost(op);
    Ok(match op {
        UnaryOp::Identity => x.to_vec(),
        UnaryOp::Neg => go(x, c, |v| -v),
        UnaryOp::Sqrt => go(x, c, f32::sqrt),
        UnaryOp::Reciprocal => go(x, c, |v| 1.0 / v),
        UnaryOp::Sigmoid => go(x, c, |v| sigmoid!(v)),
        UnaryOp::Tanh => go(x, c, f32::tanh),
        UnaryOp::Cos => go(x, c, f32::cos),
        UnaryOp::Sin => go(x, c, f32::sin),
        UnaryOp::Exp => go(x, c, f32::exp),
        UnaryOp::Log => go(x, c, f32::ln),
        UnaryOp::Abs => go(x, c, f32::abs),
        UnaryOp::Relu => go(x, c, |v| if v < 0.0 { 0.0 } else { v }),
        UnaryOp::Erf => go(x, c, libm::erff),
        UnaryOp::Not => bail!("Not takes a bool tensor, not a float one"),
    })
}

fn f64_fn(op: UnaryOp) -> Result<fn(f64) -> f64> {
    Ok(match op {
        UnaryOp::Identity => |x| x,
        UnaryOp::Neg => |x| -x,
        UnaryOp::Sqrt => f64::sqrt,
        UnaryOp::Reciprocal => |x| 1.0 / x,
        UnaryOp::Sigmoid => |x| sigmoid!(x),
        UnaryOp::Tanh => f64::tanh,
        UnaryOp::Cos => f64::cos,
        UnaryOp::Sin => f64::sin,
        UnaryOp::Exp => f64::exp,
        UnaryOp::Log => f64::ln,
        UnaryOp::Abs => f64::abs,
        UnaryOp::Relu => |x| if x < 0.0 { 0.0 } else { x },
        UnaryOp::Erf => libm::erf,
        UnaryOp::Not => bail!("Not takes a bool tensor, not a float one"),
    })
}

/// Neg/Abs/Relu on a signed or unsigned integer tensor (wrapping, like C).
macro_rules! int_unary {
    ($t:expr, $T:ty, $op:expr) => {{
        let x = pod_view::<$T>($t)?;
        #[allow(unused_comparisons)]
        let f: fn($T) -> $T = match $op {
            UnaryOp::Neg => |v: $T| v.wrapping_neg(),
            UnaryOp::Abs => |v: $T| if v < 0 { v.wrapping_neg() } else { v },
            UnaryOp::Relu => |v: $T| if v < 0 { 0 } else { v },
            other => bail!("{other:?} is not defined for {} tensors", $t.dtype()),
        };
        tensor_from_pod(
            $t.dtype(),
            $t.shape().to_vec(),
            x.iter().map(|&v| f(v)).collect(),
        )?
    }};
}

pub fn run(op: &Unary, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let shape = x.shape().to_vec();
    if op.op == UnaryOp::Identity {
        return Ok(vec![x.clone()]);
    }
    let out = match (op.op, x.dtype()) {
        (UnaryOp::Not, DType::Bool) => {
            let v = x.bools()?;
            tensor_from_pod(
                DType::Bool,
                shape,
                v.iter().map(|&b| u8::from(b == 0)).collect(),
            )?
        }
        (UnaryOp::Not, other) => bail!("Not takes a bool tensor, got {other}"),
        (o, DType::F32) => Tensor::from_vec(shape, map_f32(o, x.f32s()?)?),
        (o, DType::F64) => {
            let f = f64_fn(o)?;
            Tensor::from_vec(shape, x.view::<f64>()?.iter().map(|&v| f(v)).collect())
        }
        (o, DType::F16) => {
            let f = f32_fn(o)?;
            let v = x.view::<f16>()?;
            Tensor::from_vec(
                shape,
                v.iter().map(|&v| f16::from_f32(f(v.to_f32()))).collect(),
            )
        }
        (o, DType::I64) => int_unary!(x, i64, o),
        (o, DType::I32) => int_unary!(x, i32, o),
        (o, DType::I8) => int_unary!(x, i8, o),
        (o, DType::U8) => int_unary!(x, u8, o),
        (o, DType::Bool) => bail!("{o:?} is not defined for bool tensors"),
    };
    Ok(vec![out])
}
