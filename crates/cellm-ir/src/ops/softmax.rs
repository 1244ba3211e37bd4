//! Softmax: Softmax over `axis` (opset >= 13 semantics: one axis).

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    pub axis: i64,
}

impl Softmax {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: same_shape(inputs, 0) }])
    }
}
