//! SimplifiedLayerNormalization: RMSNorm: x / sqrt(mean(x^2) + eps) * scale over the axes from `axis` on, statistics in f32.

use super::layer_norm::{check_param, stats_shape};
use super::{need, opt, Fact};
use crate::shape::normalize_axis;
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SimplifiedLayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
}

impl SimplifiedLayerNormalization {
    /// Outputs: Y, inv_std_var (f32).
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        need(inputs, 1)?;
        let Some(xs) = &x.shape else {
            return Ok(vec![x.clone(), Fact::new(DType::F32, None)]);
        };
        let axis = normalize_axis(self.axis, xs.len())?;
        check_param(xs, opt(inputs, 1), "scale", x.dtype)?;
        Ok(vec![
            x.clone(),
            Fact::new(DType::F32, Some(stats_shape(xs, axis))),
        ])
    }
}
