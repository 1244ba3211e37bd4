//! SkipSimplifiedLayerNormalization: com.microsoft: s = input + skip (+ bias); outputs RMSNorm(s) * gamma, mean (unused, empty), inv_std_var, and s.

use super::layer_norm::{check_param, stats_shape};
use super::{need, opt, Fact};
use crate::shape::fmt_shape;
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SkipSimplifiedLayerNormalization {
    pub epsilon: f32,
}

impl SkipSimplifiedLayerNormalization {
    /// Outputs: output, mean (f32), inv_std_var (f32), input_skip_bias_sum.
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let skip = need(inputs, 1)?;
        need(inputs, 2)?;
        if skip.dtype != x.dtype {
            anyhow::bail!("input is {} but skip is {}", x.dtype, skip.dtype);
        }
        let Some(xs) = &x.shape else {
            let stats = Fact::new(DType::F32, None);
            return Ok(vec![x.clone(), stats.clone(), stats, x.clone()]);
        };
        if !(2..=3).contains(&xs.len()) {
            anyhow::bail!(
                "input must be [batch, seq, hidden] or [tokens, hidden], got {}",
                fmt_shape(xs)
            );
        }
        // skip is the input's shape or broadcasts to it along leading dims.
        check_param(xs, Some(skip), "skip", x.dtype)?;
        check_param(xs, opt(inputs, 2), "gamma", x.dtype)?;
        check_param(xs, opt(inputs, 3), "bias", x.dtype)?;
        let stats = Fact::new(DType::F32, Some(stats_shape(xs, xs.len() - 1)));
        Ok(vec![x.clone(), stats.clone(), stats, x.clone()])
    }
}
