//! Squeeze: Remove size-1 axes: `axes` attribute (opset < 13), input 1, or all size-1 axes.

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Squeeze {
    pub axes: Option<Vec<i64>>,
}

impl Squeeze {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: None }])
    }
}
