//! SkipSimplifiedLayerNormalization: com.microsoft: s = input + skip (+ bias); outputs RMSNorm(s) * gamma, mean (unused, empty), inv_std_var, and s.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct SkipSimplifiedLayerNormalization {
    pub epsilon: f32,
}

impl SkipSimplifiedLayerNormalization {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
