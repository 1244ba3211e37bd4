//! CPU kernel for LayerNormalization: y = (x - mean) / sqrt(var + eps) * scale + bias
//! over the axes from `axis` on. Statistics are accumulated in f64 and kept as
//! f32 (ONNX's default stash_type); f16 input is computed in f32 and rounded.
//! Outputs: Y, Mean and InvStdDev (f32, shape x.shape[..axis] + [1; rank - axis]).
//! Rows are split over the cores.

use super::common::{broadcast_values_to, f32_to_tensor, f32_values, input, opt_input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::LayerNormalization;
use cellm_ir::shape::normalize_axis;
use cellm_ir::{DType, Tensor};

pub fn run(op: &LayerNormalization, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("LayerNormalization input X")?;
    let scale = input(inputs, 1).context("LayerNormalization input Scale")?;
    let bias = opt_input(inputs, 2);
    if !matches!(x.dtype(), DType::F32 | DType::F16 | DType::F64) {
        bail!("LayerNormalization: unsupported dtype {}", x.dtype());
    }
    let (outer, norm_shape, stat_shape) =
        split_at_axis(x.shape(), op.axis).context("LayerNormalization")?;
    let inner: usize = norm_shape.iter().product();
    let xv = f32_values(x, "LayerNormalization X")?;
    let sv = broadcast_values_to(
        &f32_values(scale, "LayerNormalization Scale")?,
        scale.shape(),
        &norm_shape,
    )
    .context("LayerNormalization Scale")?;
    let bv = match bias {
        Some(b) => Some(
            broadcast_values_to(
                &f32_values(b, "LayerNormalization B")?,
                b.shape(),
                &norm_shape,
            )
            .context("LayerNormalization B")?,
        ),
        None => None,
    };
    let mut y = vec![0f32; xv.len()];
    // Per row: (mean, 1/std), filled alongside the row's outputs.
    let mut stats = vec![(0f32, 0f32); outer];
    if inner > 0 {
        let eps = op.epsilon as f64;
        crate::par::for_rows_mut_with(&mut y, inner, &mut stats, 1, 3 * inner, |row0, ys, st| {
            for (r, (yr, s)) in ys.chunks_exact_mut(inner).zip(st.iter_mut()).enumerate() {
                let xr = &xv[(row0 + r) * inner..(row0 + r + 1) * inner];
                let mean = crate::vmath::sum_f64(xr) / inner as f64;
                let var = crate::vmath::sum_sq_dev_f64(xr, mean) / inner as f64;
                let inv_std = (1.0 / (var + eps).sqrt()) as f32;
                let mean = mean as f32;
                crate::vmath::normalize_affine(xr, mean, inv_std, &sv, bv.as_deref(), yr);
                *s = (mean, inv_std);
            }
        });
    }
    let (means, inv_stds): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
    Ok(vec![
        f32_to_tensor(x.dtype(), x.shape().to_vec(), y)?,
        Tensor::from_vec(stat_shape.clone(), means),
        Tensor::from_vec(stat_shape, inv_stds),
    ])
}

/// For normalising over the axes from `axis` on: (rows, normalised shape,
/// statistics shape = leading dims + 1s).
pub(crate) fn split_at_axis(shape: &[usize], axis: i64) -> Result<(usize, Vec<usize>, Vec<usize>)> {
    let axis = normalize_axis(axis, shape.len())?;
    let outer: usize = shape[..axis].iter().product();
    let mut stat_shape = shape[..axis].to_vec();
    stat_shape.resize(shape.len(), 1);
    Ok((outer, shape[axis..].to_vec(), stat_shape))
}
