//! CPU kernel for Softmax (opset 13: normalises along one axis). Numerically
//! stable (max subtracted first). f16 is computed in f32 and rounded once; f64
//! stays f64. A lane that is all -inf gives NaN, as numpy and onnxruntime do.
//! f32 lanes along the last axis use the vectorised polynomial exp (≤ 2 ulp)
//! and split rows over the cores.

use super::common::{f32_to_tensor, f32_values, input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::Softmax;
use cellm_ir::shape::normalize_axis;
use cellm_ir::{DType, Tensor};

pub fn run(op: &Softmax, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("Softmax input")?;
    let shape = x.shape().to_vec();
    if shape.is_empty() {
        bail!("Softmax: scalar input has no axis");
    }
    let axis = normalize_axis(op.axis, shape.len()).context("Softmax")?;
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let out = match x.dtype() {
        DType::F64 => {
            let mut v = x.view::<f64>()?.to_vec();
            softmax_f64(&mut v, len, inner);
            Tensor::from_vec(shape, v)
        }
        DType::F32 | DType::F16 => {
            let mut v = f32_values(x, "Softmax input")?.into_owned();
            softmax_f32(&mut v, len, inner);
            f32_to_tensor(x.dtype(), shape, v)?
        }
        other => bail!("Softmax: unsupported dtype {other}"),
    };
    Ok(vec![out])
}

/// In-place softmax over lanes of `len` elements spaced `inner` apart (the
/// data is [outer, len, inner]). Contiguous lanes (`inner == 1`, the usual
/// last-axis case and attention's score rows) run the vectorised exp over
/// all cores; strided lanes take the scalar loop.
pub(crate) fn softmax_f32(data: &mut [f32], len: usize, inner: usize) {
    if len == 0 || inner == 0 {
        return;
    }
    if inner == 1 {
        // ~4 units per element: max, exp, sum and scale passes.
        crate::par::for_rows_mut(data, len, 4 * len, |_, rows| {
            for lane in rows.chunks_exact_mut(len) {
                let max = crate::vmath::max_slice(lane);
                let sum = crate::vmath::exp_sub_sum(lane, max);
                crate::vmath::scale_slice(lane, 1.0 / sum);
            }
        });
        return;
    }
    softmax_strided_f32(data, len, inner);
}

macro_rules! softmax_impl {
    ($name:ident, $t:ty) => {
        /// In-place softmax over lanes of `len` elements spaced `inner` apart
        /// (the data is [outer, len, inner]); scalar, libm exp.
        pub(crate) fn $name(data: &mut [$t], len: usize, inner: usize) {
            if len == 0 || inner == 0 {
                return;
            }
            for block in data.chunks_exact_mut(len * inner) {
                for i in 0..inner {
                    let max = (0..len)
                        .map(|j| block[j * inner + i])
                        .fold(<$t>::NEG_INFINITY, <$t>::max);
                    let mut sum: $t = 0.0;
                    for j in 0..len {
                        let e = (block[j * inner + i] - max).exp();
                        block[j * inner + i] = e;
                        sum += e;
                    }
                    let inv = 1.0 / sum;
                    for j in 0..len {
                        block[j * inner + i] *= inv;
                    }
                }
            }
        }
    };
}
softmax_impl!(softmax_strided_f32, f32);
softmax_impl!(softmax_f64, f64);
