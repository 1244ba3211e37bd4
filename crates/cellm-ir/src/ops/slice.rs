//! Slice: Slice(data, starts, ends, axes?, steps?) (opset >= 10 form).

#[allow(unused_imports)]
use super::{need, same_shape, Fact};
#[allow(unused_imports)]
use crate::{DType, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct Slice;

impl Slice {
    pub fn infer(&self, inputs: &[Option<&Fact>], _consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
        Ok(vec![Fact { dtype: need(inputs, 0)?.dtype, shape: None }])
    }
}
