//! CPU kernel for com.microsoft SkipSimplifiedLayerNormalization:
//! s = input + skip (+ bias); output = RMSNorm(s) * gamma over the last axis.
//! Outputs, as onnxruntime orders them: output, mean (not computed by the
//! simplified op: zeros), inv_std_var (f32, input.shape[..-1] + [1]), and
//! input_skip_bias_sum = s. f16 is computed in f32 and the unrounded f32 sum is
//! normalised (as onnxruntime does); only the outputs are rounded.

use super::common::{broadcast_values_to, f32_to_tensor, f32_values, input, opt_input};
use super::simplified_layer_norm::rms_norm;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::SkipSimplifiedLayerNormalization;
use cellm_ir::{DType, Tensor};

pub fn run(
    op: &SkipSimplifiedLayerNormalization,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("SkipSimplifiedLayerNormalization input")?;
    let skip = input(inputs, 1).context("SkipSimplifiedLayerNormalization skip")?;
    let gamma = input(inputs, 2).context("SkipSimplifiedLayerNormalization gamma")?;
    let bias = opt_input(inputs, 3);
    if !matches!(x.dtype(), DType::F32 | DType::F16) {
        bail!(
            "SkipSimplifiedLayerNormalization: unsupported dtype {}",
            x.dtype()
        );
    }
    let shape = x.shape().to_vec();
    let Some(&hidden) = shape.last() else {
        bail!("SkipSimplifiedLayerNormalization: scalar input");
    };
    let mut sum = f32_values(x, "SkipSimplifiedLayerNormalization input")?.into_owned();
    let skip_v = f32_values(skip, "SkipSimplifiedLayerNormalization skip")?;
    if skip.shape() == shape.as_slice() {
        sum.iter_mut().zip(skip_v.iter()).for_each(|(s, k)| *s += k);
    } else {
        let skip_b = broadcast_values_to(&skip_v, skip.shape(), &shape)
            .context("SkipSimplifiedLayerNormalization skip")?;
        sum.iter_mut().zip(&skip_b).for_each(|(s, k)| *s += k);
    }
    if let Some(b) = bias {
        if b.len() != hidden {
            bail!(
                "SkipSimplifiedLayerNormalization: bias has {} values, hidden size is {hidden}",
                b.len()
            );
        }
        let bv = f32_values(b, "SkipSimplifiedLayerNormalization bias")?;
        sum.chunks_exact_mut(hidden.max(1))
            .for_each(|row| row.iter_mut().zip(bv.iter()).for_each(|(s, b)| *s += b));
    }
    if gamma.len() != hidden {
        bail!(
            "SkipSimplifiedLayerNormalization: gamma has {} values, hidden size is {hidden}",
            gamma.len()
        );
    }
    let gv = f32_values(gamma, "SkipSimplifiedLayerNormalization gamma")?;
    let (y, inv) = rms_norm(&sum, &gv, hidden, op.epsilon);
    let sum_t = f32_to_tensor(x.dtype(), shape.clone(), sum)?;
    let mut stat_shape = shape.clone();
    if let Some(last) = stat_shape.last_mut() {
        *last = 1;
    }
    let rows = inv.len();
    Ok(vec![
        f32_to_tensor(x.dtype(), shape, y)?,
        Tensor::from_vec(stat_shape.clone(), vec![0f32; rows]),
        Tensor::from_vec(stat_shape, inv),
        sum_t,
    ])
}
