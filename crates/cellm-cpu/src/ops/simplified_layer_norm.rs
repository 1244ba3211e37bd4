//! CPU kernel for SimplifiedLayerNormalization (onnxruntime's RMSNorm):
//! y = x / sqrt(mean(x^2) + eps) * scale over the axes from `axis` on.
//! Computed in f32 (f64 accumulation) and rounded to the input dtype; rows
//! are split over the cores.
//! Outputs: Y and inv_std_var (f32, shape x.shape[..axis] + [1; rank - axis]).

use super::common::{broadcast_values_to, f32_to_tensor, f32_values, input};
use super::layer_norm::split_at_axis;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::SimplifiedLayerNormalization;
use cellm_ir::{DType, Tensor};

pub fn run(op: &SimplifiedLayerNormalization, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("SimplifiedLayerNormalization input X")?;
    let scale = input(inputs, 1).context("SimplifiedLayerNormalization input scale")?;
    if !matches!(x.dtype(), DType::F32 | DType::F16 | DType::F64) {
        bail!(
            "SimplifiedLayerNormalization: unsupported dtype {}",
            x.dtype()
        );
    }
    let (_, norm_shape, stat_shape) =
        split_at_axis(x.shape(), op.axis).context("SimplifiedLayerNormalization")?;
    let inner: usize = norm_shape.iter().product();
    let xv = f32_values(x, "SimplifiedLayerNormalization X")?;
    let sv = broadcast_values_to(
        &f32_values(scale, "SimplifiedLayerNormalization scale")?,
        scale.shape(),
        &norm_shape,
    )
    .context("SimplifiedLayerNormalization scale")?;
    let (y, inv) = rms_norm(&xv, &sv, inner, op.epsilon);
    Ok(vec![
        f32_to_tensor(x.dtype(), x.shape().to_vec(), y)?,
        Tensor::from_vec(stat_shape, inv),
    ])
}

/// RMSNorm of each row of `inner` values: (normalised rows times `scale`, 1/rms per row).
pub(crate) fn rms_norm(
    x: &[f32],
    scale: &[f32],
    inner: usize,
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    if inner == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut y = vec![0f32; x.len()];
    let mut inv = vec![0f32; x.len() / inner];
    let eps = epsilon as f64;
    crate::par::for_rows_mut_with(&mut y, inner, &mut inv, 1, 2 * inner, |row0, ys, invs| {
        for (r, (yr, iv)) in ys.chunks_exact_mut(inner).zip(invs.iter_mut()).enumerate() {
            let xr = &x[(row0 + r) * inner..(row0 + r + 1) * inner];
            let mean_sq = crate::vmath::sum_sq_dev_f64(xr, 0.0) / inner as f64;
            let inv_rms = (1.0 / (mean_sq + eps).sqrt()) as f32;
            crate::vmath::scale_mul(xr, inv_rms, scale, yr);
            *iv = inv_rms;
        }
    });
    (y, inv)
}
