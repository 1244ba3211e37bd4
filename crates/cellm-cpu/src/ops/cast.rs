//! CPU kernel for Cast. Floats convert through f64 (exact for f16/f32), ints
//! through i64, so every conversion rounds at most once: float→int truncates
//! toward zero to i64 and then wraps (as onnxruntime does), int→int wraps,
//! to f16 rounds to nearest even, to bool is `x != 0`, from bool is 1/0.

use super::common::{input, tensor_from_pod, with_num, Num};
use anyhow::Result;
use cellm_ir::ops::Cast;
use cellm_ir::{DType, Tensor};

/// Values of `x` converted to `T`.
fn convert_to<T: Num>(x: &Tensor) -> Result<Vec<T>> {
    if x.dtype() == DType::Bool {
        return Ok(x
            .bools()?
            .iter()
            .map(|&b| T::from_i64(i64::from(b != 0)))
            .collect());
    }
    Ok(with_num!(x.dtype(), S => {
        let v = x.view::<S>()?;
        if S::IS_FLOAT && !T::IS_FLOAT {
            // Truncate to i64 first, then wrap to the narrow type: onnxruntime
            // gives 44 for 300.0 -> i8 and 254 for -2.7 -> u8.
            v.iter().map(|&s| T::from_i64(s.to_f64() as i64)).collect()
        } else if S::IS_FLOAT {
            v.iter().map(|&s| T::from_f64(s.to_f64())).collect()
        } else {
            v.iter().map(|&s| T::from_i64(s.to_i64())).collect()
        }
    }))
}

/// Truth values of `x` (nonzero; NaN counts as true, like C).
fn to_bools(x: &Tensor) -> Result<Vec<u8>> {
    if x.dtype() == DType::Bool {
        return Ok(x.bools()?.iter().map(|&b| u8::from(b != 0)).collect());
    }
    Ok(with_num!(x.dtype(), S => {
        x.view::<S>()?.iter().map(|&s| u8::from(s.to_f64() != 0.0)).collect()
    }))
}

pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    let shape = x.shape().to_vec();
    if to == DType::Bool {
        return tensor_from_pod(DType::Bool, shape, to_bools(x)?);
    }
    with_num!(to, T => tensor_from_pod(to, shape, convert_to::<T>(x)?))
}

pub fn run(op: &Cast, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    Ok(vec![cast(input(inputs, 0)?, op.to)?])
}
