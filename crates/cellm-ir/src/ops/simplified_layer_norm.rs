//! SimplifiedLayerNormalization: RMSNorm: x / sqrt(mean(x^2) + eps) * scale over the axes from `axis` on, statistics in f32.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct SimplifiedLayerNormalization {
    pub axis: i64,
    pub epsilon: f32,
}

impl SimplifiedLayerNormalization {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
